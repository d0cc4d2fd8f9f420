"""Routing and grouping, pure: which routes an alert takes, and which notification group it joins.

`match(route, labels)` walks the tree as Alertmanager does: depth first, the first matching child wins
unless it has `continue: true`, and a route none of whose children match is itself the match.
`group_key(alert_labels, route)` names the group: the route and the values of its group_by labels.
`due(group, route, now)` says whether a group's notification is due (group_wait for a new group,
group_interval after a change, repeat_interval when nothing changed but alerts still fire).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.router.config import Route
from tocsin.router.matchers import matches_all


def match(route: Route, labels: dict[str, str]) -> list[Route]:
    if not matches_all(route.matchers, labels):
        return []
    found: list[Route] = []
    for child in route.routes:
        matched = match(child, labels)
        if matched:
            found.extend(matched)
            if not child.continue_:
                break
    return found or [route]


def group_key(labels: dict[str, str], route: Route) -> str:
    """`<route id>:{label="value",...}` over the route's group_by labels, in their order."""
    values = ",".join(f'{name}="{labels.get(name, "")}"' for name in route.group_by)
    return f"{route.id}:{{{values}}}"


@dataclass
class Group:
    """A notification group of one route and receiver: its alerts and what was last sent."""

    key: str
    route_id: str
    receiver: str
    created_at: float
    alerts: dict[str, dict] = field(default_factory=dict)  # alert id -> latest alert state
    notified_at: float | None = None
    notified: frozenset = frozenset()  # (alert id, sequence) pairs in the last notification

    def content(self) -> frozenset:
        return frozenset((a["id"], a["sequence"]) for a in self.alerts.values())

    def firing(self) -> list[dict]:
        return [a for a in self.alerts.values() if a["status"] != "RESOLVED"]


def due(group: Group, route: Route, now: float) -> bool:
    if not group.alerts:
        return False
    if group.notified_at is None:
        return now >= group.created_at + route.group_wait_s
    if group.content() != group.notified:
        return now >= group.notified_at + route.group_interval_s
    return bool(group.firing()) and now >= group.notified_at + route.repeat_interval_s


def next_due(group: Group, route: Route) -> float | None:
    """When `due` next becomes true if nothing changes (for the scheduler's sleep)."""
    if not group.alerts:
        return None
    if group.notified_at is None:
        return group.created_at + route.group_wait_s
    if group.content() != group.notified:
        return group.notified_at + route.group_interval_s
    return group.notified_at + route.repeat_interval_s if group.firing() else None
