"""Silences, pure: matchers with an author, a reason and a time range; an alert they match is not
notified while the silence is active. Created and expired through the API or CLI, each change audited in
the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from tocsin.router.matchers import matches_all, parse_matcher


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[str, ...]
    author: str
    reason: str
    starts_at: float
    ends_at: float

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: dict[str, str]) -> bool:
        return matches_all([parse_matcher(m) for m in self.matchers], labels)


def silenced_by(labels: dict[str, str], silences, now: float) -> str | None:
    for silence in silences:
        if silence.active(now) and silence.matches(labels):
            return silence.id
    return None


def validate(matchers: list[str], author: str, reason: str, starts_at: float, ends_at: float) -> list[str]:
    """Every problem of a new silence, as messages for the API's 400 answer."""
    errors = []
    if not matchers:
        errors.append("matchers: at least one is needed (a silence of everything is not allowed)")
    for i, text in enumerate(matchers):
        try:
            parse_matcher(text)
        except ValueError as error:
            errors.append(f"matchers.{i}: {error}")
    if not author.strip():
        errors.append("author: missing")
    if not reason.strip():
        errors.append("reason: missing")
    if ends_at <= starts_at:
        errors.append("ends_at: must be after starts_at")
    return errors
