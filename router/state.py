"""The router's state, rebuilt from its ledger: `RouterState.apply(entry)` for every entry, in order.

Every change of the router's state is a ledger entry first (event sourcing), so a restarted router that
replays the ledger is exactly where the last one stopped: the alerts it had read (and the offsets to
resume at), its groups and what each last notified, every pending escalation deadline, acknowledgements,
decisions and silences. Nothing of it lives only in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.router.dispatch import Group
from tocsin.router.ledger import Entry
from tocsin.router.outbox import Pending
from tocsin.router.silence import Silence

DECISIONS = ("ACTION_TAKEN", "DECLINED", "REFERRED")


@dataclass
class Escalation:
    policy: str
    level: int = 0  # 0: the route's receiver; k: the k-th step of the policy
    last_at: float | None = None  # when the current level was notified
    done: bool = False  # acknowledged, or resolved


@dataclass
class RouterState:
    offsets: dict[int, int] = field(default_factory=dict)  # alert topic partition -> next offset
    alerts: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    routed: dict[str, set] = field(default_factory=dict)  # alert id -> receivers it was sent or routed to
    escalations: dict[str, Escalation] = field(default_factory=dict)
    first_notified: dict[str, float] = field(default_factory=dict)
    acks: dict[str, dict] = field(default_factory=dict)
    decisions: dict[str, dict] = field(default_factory=dict)
    silences: dict[str, Silence] = field(default_factory=dict)
    muted: set = field(default_factory=set)  # (alert id, sequence, receiver) already recorded as muted
    resolved_at: dict[str, float] = field(default_factory=dict)  # in the order they resolved
    archived: dict[str, int] = field(default_factory=dict)  # alert id -> its last sequence
    pending: dict[str, Pending] = field(default_factory=dict)  # delivery id -> owed, in queue order
    queued: int = 0  # delivery.queued entries so far (numbers the deliveries: outbox.delivery_id)
    last: Entry | None = None
    # What a crash may have cut short, for the restarted router to finish (Router._resume): the alert of
    # an alert.received whose alert.routed was not written yet; the delivery.queued entries (subject id,
    # payload) since the last decision (`opening`, an entry of another kind than those two and
    # `notification`): the channels a message was queued for so far; and an attempt whose entries (one
    # per alert) were not all written: [payload, entries written].
    story: dict[str, list[Entry]] = field(default_factory=dict)  # alert id -> its entries, in order
    unrouted: dict | None = None
    trail: list = field(default_factory=list)
    opening: Entry | None = None
    writing: list | None = None

    @classmethod
    def rebuilt(cls, entries) -> RouterState:
        """The state the ledger's entries describe, applied in order."""
        state = cls()
        for entry in entries:
            state.apply(entry)
        return state

    def apply(self, entry: Entry) -> None:
        at = entry.at / 1000
        p = entry.payload
        kind = entry.kind
        if kind == "alert.received":
            alert = p["alert"]
            held = self.alerts.get(alert["id"])
            if held is None or alert["sequence"] >= held["sequence"]:
                self.alerts[alert["id"]] = alert
            self.offsets[p["partition"]] = max(self.offsets.get(p["partition"], 0), p["offset"] + 1)
            if alert["status"] == "RESOLVED":
                self.resolved_at.setdefault(alert["id"], at)
                if alert["id"] in self.escalations:
                    self.escalations[alert["id"]].done = True
            self.unrouted = alert
        elif kind == "alert.routed":
            self.unrouted = None
            alert = self.alerts[entry.subject_id]
            for r in p["routes"]:
                group = self.groups.get(r["group_key"])
                if group is None:
                    group = self.groups[r["group_key"]] = Group(r["group_key"], r["route"], r["receiver"], at)
                group.alerts[alert["id"]] = alert
                self.routed.setdefault(alert["id"], set()).add(r["receiver"])
                if (
                    r.get("escalation")
                    and alert["id"] not in self.escalations
                    and alert["status"] != "RESOLVED"
                ):
                    self.escalations[alert["id"]] = Escalation(r["escalation"])
        elif kind == "group.notified":
            group = self.groups[p["group_key"]]
            content = frozenset((i, s) for i, s in p["content"])
            group.notified_at, group.notified = at, content
            for alert_id, _ in content:
                alert = group.alerts.get(alert_id)
                if alert is None:
                    continue
                if alert["status"] == "RESOLVED":
                    del group.alerts[alert_id]  # sent as resolved: the group is done with it
                    continue
                self.first_notified.setdefault(alert_id, at)
                esc = self.escalations.get(alert_id)
                if esc is not None and esc.last_at is None:
                    esc.last_at = at
            # What was notified of the alerts the group keeps: with the resolved ones dropped above still
            # in it, content() != notified and `due` took the drop for a change, sending the firing rest
            # again group_interval later (or not, if another change came first: a duplicate that depended
            # on timing, so a restarted router's ledger differed from an uninterrupted one's).
            group.notified = frozenset((i, s) for i, s in content if i in group.alerts)
            if not group.alerts:
                del self.groups[p["group_key"]]
        elif kind == "escalation":
            esc = self.escalations[entry.subject_id]
            esc.level, esc.last_at = p["level"], at
            self.routed.setdefault(entry.subject_id, set()).add(p["receiver"])
        elif kind == "response":
            alert_id = entry.subject_id
            record = {**p, "at": at}
            self.acks.setdefault(alert_id, record)  # any answer means someone has the warning in hand
            if p["kind"] in DECISIONS:
                self.decisions.setdefault(alert_id, record)
            if p["kind"] == "REFERRED" and p.get("referred_to"):
                self.routed.setdefault(alert_id, set()).add(p["referred_to"])
            if alert_id in self.escalations:
                self.escalations[alert_id].done = True
        elif kind == "delivery.queued":
            self.pending[p["delivery"]] = Pending(p, 0, at)
            self.queued += 1
        elif kind == "notification":
            self._attempted(entry.subject_id, p, at)
        elif kind == "alert.archived":
            self.archive(entry.subject_id)
        elif kind == "alert.muted":
            self.muted.add((entry.subject_id, p["sequence"], p["receiver"]))
        elif kind == "silence.created":
            s = p["silence"]
            self.silences[s["id"]] = Silence(
                s["id"], tuple(s["matchers"]), s["author"], s["reason"], s["starts_at"], s["ends_at"]
            )
        elif kind == "silence.expired":
            old = self.silences.get(entry.subject_id)
            if old is not None:
                self.silences[old.id] = Silence(
                    old.id, old.matchers, old.author, old.reason, old.starts_at, at
                )
        if entry.subject_id in self.alerts:  # the console tells it; archived alerts' stories are dropped
            self.story.setdefault(entry.subject_id, []).append(entry)
        if kind == "delivery.queued":
            self.trail.append((entry.subject_id, p))
        elif kind != "notification":  # attempts are written by the lanes, between any two decisions
            self.trail, self.opening = [], entry
        self.last = entry

    def _attempted(self, alert_id: str, p: dict, at: float) -> None:
        """An attempt's entry (one per alert of the delivery, the first alert's first, written together):
        the delivery ends (delivered, failed for good) or waits `retry_in_s` for its next attempt."""
        if alert_id == p["alert_ids"][0]:
            self.writing = [p, 0]
            owed = self.pending.get(p.get("delivery", ""))  # entries before the outbox have no delivery
            if owed is not None and p["status"] == "RETRYING":
                owed.attempt, owed.next_at = p["attempt"], at + p["retry_in_s"]
            elif owed is not None:
                del self.pending[owed.id]
        if self.writing is not None:
            self.writing[1] += 1
            if self.writing[1] == len(self.writing[0]["alert_ids"]):
                self.writing = None

    def archive(self, alert_id: str) -> None:
        """Forget a resolved alert but its id and last sequence (so a repeat of it is still recognised)."""
        self.archived[alert_id] = self.alerts.pop(alert_id)["sequence"]
        for table in (
            self.routed,
            self.escalations,
            self.first_notified,
            self.acks,
            self.decisions,
            self.story,
        ):
            table.pop(alert_id, None)
        self.resolved_at.pop(alert_id, None)
        self.muted = {m for m in self.muted if m[0] != alert_id}

    def archivable(self, older_than: float) -> list[str]:
        """Resolved before `older_than`, and its resolution notified to every group it was in."""
        out, in_groups = [], None
        for alert_id, at in self.resolved_at.items():
            if at > older_than:
                break  # in resolution order: the rest are younger
            if in_groups is None:
                in_groups = {a for g in self.groups.values() for a in g.alerts}
            if alert_id not in in_groups:
                out.append(alert_id)
        return out

    def unacknowledged(self) -> list[str]:
        """Firing alerts that were notified and nobody has answered."""
        return [
            a
            for a in self.first_notified
            if a not in self.acks and self.alerts.get(a, {}).get("status") != "RESOLVED"
        ]
