"""What the router decides, as pure functions of its state, its config and the time: no I/O, no clock.

Each step (an alert event, time passing, an attempt's outcome, an answer, a restart's resume) is a
generator of ledger entries, `(kind, subject id, actor, payload)`, as Alertmanager's dispatcher is a pure
function of its groups and the time. The router (service.py) writes each entry to the ledger and applies
it to the state (state.py) before the generator goes on, so every decision is made on the state that the
entries before it made, exactly as a restarted router replays them. The generators read the state and
never change it: everything that changes is an entry, and sending (lanes.py), publishing records and
the clock stay in the router.
"""

from __future__ import annotations

from collections.abc import Iterator

from tocsin.router.config import Route, RouterConfig
from tocsin.router.dispatch import due, group_key, match
from tocsin.router.escalation import next_step
from tocsin.router.inhibit import inhibited_by
from tocsin.router.notify.payload import Message
from tocsin.router.notify.retry import is_final, retry_delay
from tocsin.router.outbox import Pending, delivery_id, queued_payload
from tocsin.router.silence import silenced_by
from tocsin.router.state import DECISIONS, RouterState

Entry = tuple[str, str, str, dict]  # kind, subject id, actor, payload: a ledger entry to write
RESPONSE_KINDS = ("ACKNOWLEDGED", "ACTION_TAKEN", "DECLINED", "REFERRED", "COMMENT")


class Forbidden(Exception):
    pass


class Invalid(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


class Engine:
    def __init__(self, config: RouterConfig):
        self.config = config
        self.routes = _index(config.route)

    # -- alerts in ----------------------------------------------------------------------------------

    def repeated(self, state: RouterState, alert: dict) -> int | None:
        """The sequence already held when this event is one the router has (a producer's retry, a
        replayed topic: the alert has moved on to this state or past it, and must not be reopened or
        notified twice); None for news."""
        held = state.alerts.get(alert["id"])
        held_sequence = held["sequence"] if held is not None else state.archived.get(alert["id"])
        if held_sequence is not None and alert["sequence"] <= held_sequence:
            return held_sequence
        return None

    def receive(self, state: RouterState, alert: dict, partition: int, offset: int) -> Iterator[Entry]:
        if self.repeated(state, alert) is not None:
            return
        received = {"alert": alert, "partition": partition, "offset": offset}
        yield "alert.received", alert["id"], "router", received
        yield from self.route(alert)

    def route(self, alert: dict) -> Iterator[Entry]:
        routes = [
            {
                "route": route.id,
                "receiver": route.receiver,
                "group_key": group_key(alert["labels"], route),
                "escalation": route.escalation,
            }
            for route in match(self.config.route, alert["labels"])
        ]
        yield "alert.routed", alert["id"], "router", {"routes": routes}

    # -- time passes --------------------------------------------------------------------------------

    def tick(self, state: RouterState, now: float) -> Iterator[Entry]:
        """Groups due, escalation deadlines passed, resolved alerts past their retention."""
        firing = None  # the inhibition sources, gathered once a tick and only if a group is due
        for group in list(state.groups.values()):
            if due(group, self.routes[group.route_id], now):
                if firing is None:
                    firing = _firing(state)
                yield from self.notify_group(state, group, now, firing)
        for alert_id, esc in list(state.escalations.items()):
            if esc.done or esc.last_at is None:
                continue
            step = next_step(self.config.escalations[esc.policy], esc.level, esc.last_at)
            if step is not None and now >= step[2]:
                yield from self.escalate(state, alert_id, step[0], step[1])
        for alert_id in state.archivable(now - self.config.retention_s):
            yield "alert.archived", alert_id, "router", {"retention_s": self.config.retention_s}

    def notify_group(self, state: RouterState, group, now: float, firing: list[dict], recorded=()):
        send = []
        told = {alert_id for alert_id, _ in group.notified}  # notified firing (resolved ones are dropped)
        send_resolved = self.config.receivers[group.receiver].send_resolved
        for alert in group.alerts.values():
            if alert["status"] == "RESOLVED" and not (send_resolved and alert["id"] in told):
                continue  # never news to this receiver, or it does not want resolutions
            muted_by = self.muted(state, alert, firing, now)
            if muted_by is None:
                send.append(alert)
            elif (alert["id"], alert["sequence"], group.receiver) not in state.muted:
                payload = {"receiver": group.receiver, "sequence": alert["sequence"], **muted_by}
                yield "alert.muted", alert["id"], "router", payload
        if send:
            labels = {name: send[0]["labels"].get(name, "") for name in self.routes[group.route_id].group_by}
            message = Message(group.receiver, group.key, labels, send)
            yield from self.queue(state, message, [a["id"] for a in send], 0, recorded)
        content = sorted([a["id"], a["sequence"]] for a in group.alerts.values())
        yield "group.notified", group.key, "router", {"group_key": group.key, "content": content}

    def muted(self, state: RouterState, alert: dict, firing: list, now: float) -> dict | None:
        source = inhibited_by(alert, firing, self.config.inhibitions)
        if source is not None:
            return {"by": "inhibition", "source": source}
        silence = silenced_by(alert["labels"], state.silences.values(), now)
        if silence is not None:
            return {"by": "silence", "source": silence}
        return None

    def escalate(self, state: RouterState, alert_id: str, level: int, receiver: str) -> Iterator[Entry]:
        yield "escalation", alert_id, "router", {"level": level, "receiver": receiver}
        yield from self.queue(state, escalation(state, alert_id, level, receiver), [alert_id], level)

    # -- deliveries ---------------------------------------------------------------------------------

    def queue(self, state: RouterState, message: Message, alert_ids: list[str], level: int, recorded=()):
        """The message queued for each channel of its receiver (a `delivery.queued` entry each, holding
        the message as decided; the lanes send them). `recorded`: the delivery.queued entries (subject
        id, payload) of this step when a restart resumes it: the channels queued before the crash are
        not queued again."""
        done = {p["channel"] for _, p in recorded if p["group_key"] == message.group_key}
        for index, channel in enumerate(self.config.receivers[message.receiver].channels):
            if index in done:
                continue
            # state.queued counts the delivery.queued entries applied so far: this one's number.
            delivery = delivery_id(state.queued, message.group_key, message.receiver, index, level)
            yield (
                "delivery.queued",
                message.group_key,
                "router",
                queued_payload(delivery, message, index, channel.kind, alert_ids),
            )

    def attempted(self, owed: Pending, outcome, digest: str) -> dict:
        """The `notification` entry's payload of an attempt at `owed` (one entry per alert): delivered,
        failed for good, or retrying, with the delay to the next attempt."""
        attempt = owed.attempt + 1
        final = is_final(outcome, attempt, self.config.retry_attempts)
        p = owed.payload
        retry_in = None
        if not final:
            backoff, most = self.config.retry_backoff_s, self.config.retry_max_backoff_s
            retry_in = retry_delay(attempt, backoff, most, owed.id, outcome.retry_after_s)
        return {
            "receiver": p["receiver"],
            "channel": p["kind"],
            "attempt": attempt,
            "status": "DELIVERED" if outcome.ok else ("FAILED" if final else "RETRYING"),
            "error": None if outcome.ok else outcome.detail,
            "group_key": p["group_key"],
            "alert_ids": p["alert_ids"],
            "level": p["level"],
            "payload_sha256": digest,
            "delivery": owed.id,
            "retry_in_s": retry_in,
        }

    # -- a restart ----------------------------------------------------------------------------------

    def resume(self, state: RouterState, now: float) -> Iterator[Entry]:
        """Finish the step a crash cut short, as the ledger's last entries show it, before reading on.

        Each step is several entries (an alert received then routed; a group's delivery queued for each
        of its receiver's channels, then group.notified; an escalation or a referral, then its deliveries
        queued; an attempt, an entry per alert of its delivery), and a kill -9 can fall between any two.
        Without this, an alert received but not routed was never notified (its offset was read past), an
        escalation or referral without its deliveries was never sent, and a group whose deliveries were
        queued but not its group.notified was queued again, every channel (sent twice). The deliveries
        still owed need nothing here: they are in the state, and the lanes make them; one whose attempt
        the ledger does not have is made again (at least once: it may have been sent).
        """
        if state.writing is not None:  # an attempt's entries cut short: the rest of them
            done, written = state.writing
            for alert_id in done["alert_ids"][written:]:
                yield "notification", alert_id, "router", done
        if state.unrouted is not None:  # the last entry: alert.received
            yield from self.route(state.unrouted)
            return
        opening, trail = state.opening, list(state.trail)
        if opening is not None and opening.kind == "escalation":
            level, receiver = opening.payload["level"], opening.payload["receiver"]
            message = escalation(state, opening.subject_id, level, receiver)
            yield from self.queue(state, message, [opening.subject_id], level, trail)
        elif opening is not None and opening.kind == "response" and opening.payload["kind"] == "REFERRED":
            message = referral(state, opening.subject_id, opening.payload["referred_to"])
            yield from self.queue(state, message, [opening.subject_id], 0, trail)
        # A group's deliveries are queued last, and its group.notified after them (a group key is in
        # the trail only while that group's notification is under way).
        key = trail[-1][1]["group_key"] if trail else None
        if key in state.groups:
            yield from self.notify_group(state, state.groups[key], now, _firing(state), trail)

    # -- responders ---------------------------------------------------------------------------------

    def answer(self, state: RouterState, organisation: str, alert_id: str, body: dict) -> dict:
        """The payload of an organisation's answer to an alert; Forbidden when the alert is unknown or
        not routed to it (the same answer), Invalid with every error of the body."""
        kind = str(body.get("kind", "")).upper()
        errors = []
        if kind not in RESPONSE_KINDS:
            errors.append(f"kind: one of {', '.join(k.lower() for k in RESPONSE_KINDS)}")
        if not str(body.get("responder", "")).strip():
            errors.append("responder: missing (who answers for the organisation)")
        if kind in ("ACTION_TAKEN", "COMMENT") and not str(body.get("description", "")).strip():
            errors.append(f"description: {kind.lower()} needs a description")
        if kind == "DECLINED" and not str(body.get("reason", "")).strip():
            errors.append("reason: declined needs a reason")
        if kind == "REFERRED" and body.get("referred_to") not in self.config.receivers:
            errors.append(f"referred_to: undefined receiver {body.get('referred_to')!r}")
        if not (state.routed.get(alert_id, set()) & self.config.receivers_of(organisation)):
            raise Forbidden(alert_id)
        if errors:
            raise Invalid(errors)
        return {
            "kind": kind,
            "organisation": organisation,
            "responder": body["responder"].strip(),
            "description": body.get("description"),
            "reason": body.get("reason"),
            "referred_to": body.get("referred_to"),
        }

    def answered(self, state: RouterState, alert_id: str, payload: dict) -> Iterator[Entry]:
        """The answer's entry (a comment, or a response that stops the escalation), and a referral's
        delivery to the receiver it names."""
        actor = f"{payload['organisation']}/{payload['responder']}"
        yield ("comment" if payload["kind"] == "COMMENT" else "response"), alert_id, actor, payload
        if payload["kind"] == "REFERRED":
            yield from self.queue(state, referral(state, alert_id, payload["referred_to"]), [alert_id], 0)


def first_answers(state: RouterState, alert_id: str, kind: str) -> tuple[bool, bool]:
    """Whether an answer of `kind` would be the alert's first answer, and its first decision."""
    return (
        alert_id not in state.acks and kind != "COMMENT",
        alert_id not in state.decisions and kind in DECISIONS,
    )


def escalation(state: RouterState, alert_id: str, level: int, receiver: str) -> Message:
    alert = state.alerts[alert_id]
    return Message(receiver, f"escalation:{alert_id}:{level}", {"alert_id": alert_id}, [alert], level)


def referral(state: RouterState, alert_id: str, receiver: str) -> Message:
    return Message(receiver, f"referral:{alert_id}", {"alert_id": alert_id}, [state.alerts[alert_id]], 0)


def _firing(state: RouterState) -> list[dict]:
    return [a for a in state.alerts.values() if a["status"] != "RESOLVED"]


def _index(route: Route, into: dict | None = None) -> dict[str, Route]:
    into = {} if into is None else into
    into[route.id] = route
    for child in route.routes:
        _index(child, into)
    return into
