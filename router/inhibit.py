"""Inhibition, pure: an alert is muted while a firing alert matching a rule's source matchers has the same
values of the rule's `equal` labels (e.g. a critical alert for a country mutes that country's warnings)."""

from __future__ import annotations

from collections.abc import Iterable

from tocsin.router.config import Inhibition
from tocsin.router.matchers import matches_all


def inhibited_by(alert: dict, firing: Iterable[dict], rules: Iterable[Inhibition]) -> str | None:
    """The id of an alert muting this one, or None."""
    labels = alert["labels"]
    for rule in rules:
        if not matches_all(rule.target, labels):
            continue
        for source in firing:
            if source["id"] == alert["id"] or source["status"] == "RESOLVED":
                continue
            if matches_all(rule.source, source["labels"]) and all(
                source["labels"].get(name, "") == labels.get(name, "") for name in rule.equal
            ):
                return source["id"]
    return None
