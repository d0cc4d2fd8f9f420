"""What the router owes its receivers: deliveries queued and not yet done, as pure data and functions.

A decision to notify (a group due, an escalation, a referral) is a `delivery.queued` ledger entry per
channel of the receiver, holding the whole message; each attempt at it is a `notification` entry, which
either ends the delivery (delivered, or failed for good) or says when to try again. So the deliveries
still owed are part of the state the ledger rebuilds (state.py), like escalation deadlines, and sending
them is not part of deciding them: the router decides under its lock in no time, and each channel of each
receiver (a lane) sends on its own thread (lanes.py), so one receiver that hangs delays nobody else.

A lane sends its deliveries in the order they were queued, one at a time: a receiver reads a group's
notifications in the order they were decided, and a retry holds back that lane only.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from tocsin.router.notify.payload import Message


@dataclass
class Pending:
    """A queued delivery: its `delivery.queued` payload, the attempts made, when the next may be made."""

    payload: dict
    attempt: int = 0  # attempts made so far
    next_at: float = 0.0  # seconds since the epoch

    @property
    def id(self) -> str:
        return self.payload["delivery"]

    @property
    def lane(self) -> tuple[str, int]:
        return self.payload["receiver"], self.payload["channel"]


def delivery_id(number: int, group_key: str, receiver: str, channel: int, level: int) -> str:
    """Deterministic: the delivery's place among the queued ones (`number`) with what it is for. The same
    decisions give the same ids, however the lanes' attempts interleave with them in the ledger, so a
    restarted router's ledger and Notification records are the uninterrupted one's."""
    key = json.dumps([number, group_key, receiver, channel, level])
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tocsin-delivery:" + key))


def queued_payload(delivery: str, message: Message, channel: int, kind: str, alert_ids: list[str]) -> dict:
    """The `delivery.queued` entry's payload: all a lane (or a restarted router) needs to send it."""
    return {
        "delivery": delivery,
        "receiver": message.receiver,
        "channel": channel,
        "kind": kind,
        "group_key": message.group_key,
        "group_labels": message.group_labels,
        "level": message.level,
        "alert_ids": alert_ids,
        "alerts": message.alerts,
    }


def message_of(payload: dict) -> Message:
    """The message a `delivery.queued` payload holds, as it was decided."""
    p = payload
    return Message(p["receiver"], p["group_key"], p["group_labels"], p["alerts"], p["level"])


def next_of(pending: dict[str, Pending], lane: tuple[str, int]) -> Pending | None:
    """The lane's delivery to make next: the first queued of those it still owes (dicts keep their
    insertion order: the order the ledger queued them)."""
    return next((p for p in pending.values() if p.lane == lane), None)


def resolution_notices(entries) -> tuple[int, int]:
    """(resolved alerts delivered, of them to a receiver never delivered that alert firing) over ledger
    entries: Alertmanager's rule, that a receiver hears of a resolution only if it heard of the firing,
    checked on what was actually delivered (tocsin demo prints it; the second count must be 0)."""
    messages = {e.payload["delivery"]: e.payload for e in entries if e.kind == "delivery.queued"}
    told: set[tuple[str, str]] = set()  # (receiver, alert id) delivered firing
    resolved = untold = 0
    for e in entries:
        p = e.payload
        if e.kind != "notification" or p["status"] != "DELIVERED" or p.get("delivery") not in messages:
            continue
        alert = next(a for a in messages[p["delivery"]]["alerts"] if a["id"] == e.subject_id)
        if alert["status"] != "RESOLVED":
            told.add((p["receiver"], e.subject_id))
            continue
        resolved += 1
        untold += (p["receiver"], e.subject_id) not in told
    return resolved, untold
