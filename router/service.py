"""The response router: read alerts, route and group them, notify, chase acknowledgements, escalate.

Every decision is appended to the ledger before it counts (see state.py): a restart replays the ledger
and resumes reading alerts at the offsets it records, so no alert is routed twice or lost and no pending
escalation deadline is forgotten. One thread owns the state; the HTTP API calls in under the same lock.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tocsin.router.config import Route, RouterConfig
from tocsin.router.dispatch import due, group_key, match
from tocsin.router.escalation import next_step
from tocsin.router.inhibit import inhibited_by
from tocsin.router.ledger import LedgerWriter, read_ledger, verify
from tocsin.router.notify import notifier_for
from tocsin.router.notify.payload import Message
from tocsin.router.notify.retry import deliver
from tocsin.router.silence import silenced_by, validate
from tocsin.router.state import RouterState
from tocsin.serde.avro import decode, default_registry, encode
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import counter, gauge, histogram
from tocsin.timestamps import epoch_ms

GAP_BUCKETS = (60, 300, 900, 1800, 3600, 7200, 14400, 43200, 86400, 259200, 604800)
ALERTS_IN = counter("tocsin_router_alerts_total", "Alert events read by the router", ["status"])
REPEATED = counter(
    "tocsin_router_repeated_alerts_total", "Alert events ignored: same or older sequence than one received"
)
DELIVERIES = counter(
    "tocsin_router_deliveries_total", "Notification attempts", ["receiver", "channel", "outcome"]
)
ESCALATIONS = counter("tocsin_router_escalations_total", "Escalations to a next level", ["receiver"])
RESPONSES = counter(
    "tocsin_router_responses_total", "Acknowledgements, decisions, comments", ["receiver", "kind"]
)
UNACKED = gauge("tocsin_router_unacknowledged_alerts", "Notified firing alerts nobody has answered")
TIME_TO_ACK = histogram(
    "tocsin_router_time_to_acknowledge_seconds",
    "First notification to first answer",
    ["receiver"],
    GAP_BUCKETS,
)
TIME_TO_DECISION = histogram(
    "tocsin_router_time_to_decision_seconds", "First notification to a decision", ["receiver"], GAP_BUCKETS
)
ALERT_TIMES = ("window_start", "window_end", "first_fired", "last_updated")
RESPONSE_KINDS = ("ACKNOWLEDGED", "ACTION_TAKEN", "DECLINED", "REFERRED", "COMMENT")


class Forbidden(Exception):
    pass


class Invalid(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


class LedgerBroken(Exception):
    """The ledger's chain is broken where `problems` say: the router does not start on it."""

    def __init__(self, topic: str, problems: list[str]):
        self.topic, self.problems = topic, problems
        super().__init__(f"the ledger {topic} does not verify: " + "; ".join(problems[:3]))


class Router:
    def __init__(self, config: RouterConfig, client: dict, topics: dict, clock=time.time, sleep=time.sleep):
        self.config = config
        self.client = client
        self.topics = topics  # alerts, ledger, notifications, responses
        self.clock = clock
        self.sleep = sleep
        self.lock = threading.RLock()
        self.state = RouterState()
        self.started = False  # the ledger is read and the state rebuilt from it
        self.routes = _index(config.route)
        self.log = get_logger(stage="router")

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        entries = read_ledger(self.client, self.topics["ledger"])
        problems = verify(entries)
        if problems:
            # Refuse to extend a broken chain: an operator must look first.
            raise LedgerBroken(self.topics["ledger"], problems)
        self.state = RouterState.rebuilt(entries)
        self.writer = LedgerWriter(self.client, self.topics["ledger"], self.state.last)
        self.producer = KafkaProducer(acks="all", **self.client)
        # Each record is acknowledged before the router goes on (a Notification before the ledger entry
        # of its attempt, see _deliver): a record left in the producer's buffer was lost with a kill -9.
        self.publish = lambda topic, key, value: self.producer.send(
            self.topics[topic], key=key, value=value
        ).get(timeout=30)
        self.consumer = KafkaConsumer(
            enable_auto_commit=False, isolation_level="read_committed", **self.client
        )
        partitions = sorted(self.consumer.partitions_for_topic(self.topics["alerts"]) or ())
        tps = [TopicPartition(self.topics["alerts"], p) for p in partitions]
        self.consumer.assign(tps)
        for tp in tps:
            self.consumer.seek(tp, self.state.offsets.get(tp.partition, 0))
        self._resume()
        UNACKED.set(len(self.state.unacknowledged()))
        self.started = True
        self.log.info(
            "router started",
            ledger_entries=len(entries),
            alerts=len(self.state.alerts),
            pending_escalations=sum(1 for e in self.state.escalations.values() if not e.done),
        )

    def _resume(self) -> None:
        """Finish the step a crash cut short, as the ledger's last entries show it, before reading on.

        Each step is several entries (an alert received then routed; a notification's attempt, an entry
        per alert and channel, then group.notified; an escalation or a referral, then its attempts), and a
        kill -9 can fall between any two. Without this, an alert received but not routed was never
        notified (its offset was read past), an escalation or referral entry without its attempts was
        never sent, and a group whose attempts were in the ledger but not its group.notified was
        notified again, every channel (sent twice, the ledger and the Notification records twice). Only
        an attempt the ledger has no entry of is sent again (at least once: it may have been sent).
        """
        with self.lock:
            if self.state.unrouted is not None:  # the last entry: alert.received
                self._route(self.state.unrouted)
                return
            opening, trail = self.state.opening, list(self.state.trail)
            if opening is not None and opening.kind == "escalation":
                level, receiver = opening.payload["level"], opening.payload["receiver"]
                message = self._escalation(opening.subject_id, level, receiver)
                self._deliver(message, [opening.subject_id], level, trail)
            elif opening is not None and opening.kind == "response" and opening.payload["kind"] == "REFERRED":
                message = self._referral(opening.subject_id, opening.payload["referred_to"])
                self._deliver(message, [opening.subject_id], 0, trail)
            # A group's attempts come last, and its group.notified after them (a group key is in the
            # trail only while that group's notification is under way).
            key = trail[-1][1]["group_key"] if trail else None
            if key in self.state.groups:
                firing = [a for a in self.state.alerts.values() if a["status"] != "RESOLVED"]
                self._notify_group(self.state.groups[key], self.clock(), firing, trail)

    def run(self, stop: threading.Event, poll_ms: int = 200) -> None:
        while not stop.is_set():
            self.poll_once(poll_ms)
            self.tick()

    def close(self) -> None:
        for closing in (self.consumer.close, self.producer.close, self.writer.close):
            try:
                closing()
            except Exception:  # noqa: BLE001 (closing after a failure must not hide it)
                pass

    # -- alerts in ----------------------------------------------------------------------------------

    def poll_once(self, timeout_ms: int = 200) -> int:
        batches = self.consumer.poll(timeout_ms=timeout_ms)
        count = 0
        for records in batches.values():
            for record in records:
                with self.lock:
                    self.receive(_plain_alert(decode(record.value)), record.partition, record.offset)
                count += 1
        return count

    def receive(self, alert: dict, partition: int, offset: int) -> None:
        held = self.state.alerts.get(alert["id"])
        held_sequence = held["sequence"] if held is not None else self.state.archived.get(alert["id"])
        if held_sequence is not None and alert["sequence"] <= held_sequence:
            # Delivered again (a producer retry, a replayed topic): the alert has already moved on to
            # this state or past it, and must not be reopened or notified twice.
            REPEATED.inc()
            self.log.warning(
                "alert event already received",
                alert_id=alert["id"],
                sequence=alert["sequence"],
                held_sequence=held_sequence,
                partition=partition,
                offset=offset,
            )
            return
        ALERTS_IN.labels(alert["status"]).inc()
        self._append(
            "alert.received",
            alert["id"],
            "router",
            {"alert": alert, "partition": partition, "offset": offset},
        )
        self._route(alert)

    def _route(self, alert: dict) -> None:
        routes = []
        for route in match(self.config.route, alert["labels"]):
            routes.append(
                {
                    "route": route.id,
                    "receiver": route.receiver,
                    "group_key": group_key(alert["labels"], route),
                    "escalation": route.escalation,
                }
            )
        self._append("alert.routed", alert["id"], "router", {"routes": routes})

    # -- time passes --------------------------------------------------------------------------------

    def tick(self) -> None:
        with self.lock:
            now = self.clock()
            firing = None  # the inhibition sources, gathered once a tick and only if a group is due
            for group in list(self.state.groups.values()):
                if due(group, self.routes[group.route_id], now):
                    if firing is None:
                        firing = [a for a in self.state.alerts.values() if a["status"] != "RESOLVED"]
                    self._notify_group(group, now, firing)
            for alert_id, esc in list(self.state.escalations.items()):
                if esc.done or esc.last_at is None:
                    continue
                step = next_step(self.config.escalations[esc.policy], esc.level, esc.last_at)
                if step is not None and now >= step[2]:
                    self._escalate(alert_id, step[0], step[1])
            for alert_id in self.state.archivable(now - self.config.retention_s):
                self._append("alert.archived", alert_id, "router", {"retention_s": self.config.retention_s})
            UNACKED.set(len(self.state.unacknowledged()))

    def _notify_group(self, group, now: float, firing: list[dict], recorded=()) -> None:
        send = []
        told = {alert_id for alert_id, _ in group.notified}  # notified firing (resolved ones are dropped)
        send_resolved = self.config.receivers[group.receiver].send_resolved
        for alert in group.alerts.values():
            if alert["status"] == "RESOLVED" and not (send_resolved and alert["id"] in told):
                continue  # never news to this receiver, or it does not want resolutions
            muted_by = self._muted(alert, firing, now)
            if muted_by is None:
                send.append(alert)
            elif (alert["id"], alert["sequence"], group.receiver) not in self.state.muted:
                self._append(
                    "alert.muted",
                    alert["id"],
                    "router",
                    {"receiver": group.receiver, "sequence": alert["sequence"], **muted_by},
                )
        if send:
            labels = {name: send[0]["labels"].get(name, "") for name in self.routes[group.route_id].group_by}
            message = Message(group.receiver, group.key, labels, send)
            self._deliver(message, [a["id"] for a in send], 0, recorded)
        content = sorted([a["id"], a["sequence"]] for a in group.alerts.values())
        self._append("group.notified", group.key, "router", {"group_key": group.key, "content": content})

    def _muted(self, alert: dict, firing: list, now: float) -> dict | None:
        source = inhibited_by(alert, firing, self.config.inhibitions)
        if source is not None:
            return {"by": "inhibition", "source": source}
        silence = silenced_by(alert["labels"], self.state.silences.values(), now)
        if silence is not None:
            return {"by": "silence", "source": silence}
        return None

    def _escalate(self, alert_id: str, level: int, receiver: str) -> None:
        ESCALATIONS.labels(receiver).inc()
        self._append("escalation", alert_id, "router", {"level": level, "receiver": receiver})
        self._deliver(self._escalation(alert_id, level, receiver), [alert_id], level)

    def _escalation(self, alert_id: str, level: int, receiver: str) -> Message:
        alert = self.state.alerts[alert_id]
        return Message(receiver, f"escalation:{alert_id}:{level}", {"alert_id": alert_id}, [alert], level)

    def _referral(self, alert_id: str, receiver: str) -> Message:
        return Message(
            receiver, f"referral:{alert_id}", {"alert_id": alert_id}, [self.state.alerts[alert_id]], 0
        )

    def _deliver(self, message: Message, alert_ids: list[str], level: int, recorded=()) -> None:
        """Send to each channel of the receiver, retrying; `recorded`: the ledger's notification entries
        (subject id, payload) of this message when a restart resumes it: channels with a final attempt
        there are not sent again (their missing entries are written), one retrying goes on after it."""
        receiver = self.config.receivers[message.receiver]
        attempts = _attempts([r for r in recorded if r[1]["group_key"] == message.group_key])
        for channel in receiver.channels:
            notifier = notifier_for(channel)
            digest = hashlib.sha256(notifier.render(message)).hexdigest()

            def record(attempt, outcome, final, notifier=notifier, digest=digest):
                status = "DELIVERED" if outcome.ok else ("FAILED" if final else "RETRYING")
                DELIVERIES.labels(message.receiver, notifier.kind, status.lower()).inc()
                payload = {
                    "receiver": message.receiver,
                    "channel": notifier.kind,
                    "attempt": attempt,
                    "status": status,
                    "error": None if outcome.ok else outcome.detail,
                    "group_key": message.group_key,
                    "alert_ids": alert_ids,
                    "level": level,
                    "payload_sha256": digest,
                }
                # The record first, then the ledger entries: an attempt in the ledger is on the topic too,
                # so a restart that finds it there has nothing to send or publish again (_resume). A
                # crash between the two is one between the delivery and its entry: the restarted router
                # delivers and publishes again (at least once), with the same record id.
                self._publish_notification(payload)
                for alert_id in alert_ids:
                    self._append("notification", alert_id, "router", payload)

            first, final = 1, False
            while not final and attempts and attempts[0][0]["channel"] == notifier.kind:  # in order
                done, written = attempts.pop(0)
                for alert_id in done["alert_ids"][written:]:  # cut short between its entries
                    self._append("notification", alert_id, "router", done)
                first, final = done["attempt"] + 1, done["status"] != "RETRYING"
            if final:
                continue  # sent (or failed for good) before the crash: the ledger says so
            deliver(
                lambda n=notifier: n.send(message),
                self.config.retry_attempts,
                self.config.retry_backoff_s,
                self.config.retry_max_backoff_s,
                record,
                self.sleep,
                first,
            )

    # -- responders ---------------------------------------------------------------------------------

    def visible(self, organisation: str) -> list[dict]:
        """The alerts routed, escalated or referred to one of the organisation's receivers."""
        mine = self.config.receivers_of(organisation)
        with self.lock:
            out = []
            for alert_id, receivers in self.state.routed.items():
                if receivers & mine:
                    alert = self.state.alerts[alert_id]
                    out.append(
                        {
                            **alert,
                            "acknowledged": self.state.acks.get(alert_id),
                            "decision": self.state.decisions.get(alert_id),
                        }
                    )
            return out

    def respond(self, organisation: str, alert_id: str, body: dict) -> dict:
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
        with self.lock:
            mine = self.config.receivers_of(organisation)
            if not (self.state.routed.get(alert_id, set()) & mine):
                raise Forbidden(alert_id)  # unknown, or not routed to this organisation: the same answer
            if errors:
                raise Invalid(errors)
            now = self.clock()
            payload = {
                "kind": kind,
                "organisation": organisation,
                "responder": body["responder"].strip(),
                "description": body.get("description"),
                "reason": body.get("reason"),
                "referred_to": body.get("referred_to"),
            }
            first_answer = alert_id not in self.state.acks and kind != "COMMENT"
            first_decision = alert_id not in self.state.decisions and kind in (
                "ACTION_TAKEN",
                "DECLINED",
                "REFERRED",
            )
            # The Response record first, acknowledged, then the ledger entry: a kill between the two
            # leaves a record the ledger does not have (the client got no answer and sends again, and the
            # record sent again has the same id), never a ledger entry whose record was lost.
            self._publish_response(alert_id, payload, now)
            if kind == "COMMENT":
                self._append("comment", alert_id, f"{organisation}/{payload['responder']}", payload)
            else:
                self._append("response", alert_id, f"{organisation}/{payload['responder']}", payload)
            receiver = sorted(self.state.routed[alert_id] & mine)[0]
            RESPONSES.labels(receiver, kind.lower()).inc()
            notified = self.state.first_notified.get(alert_id)
            if notified is not None and first_answer:
                TIME_TO_ACK.labels(receiver).observe(now - notified)
            if notified is not None and first_decision:
                TIME_TO_DECISION.labels(receiver).observe(now - notified)
            if kind == "REFERRED":
                self._deliver(self._referral(alert_id, body["referred_to"]), [alert_id], 0)
            UNACKED.set(len(self.state.unacknowledged()))
            return payload

    def create_silence(self, organisation: str, body: dict) -> dict:
        now = self.clock()
        matchers = list(body.get("matchers") or [])
        starts = float(body.get("starts_at", now))
        ends = float(body["ends_at"]) if "ends_at" in body else starts + float(body.get("duration_s", 0))
        errors = validate(matchers, str(body.get("author", "")), str(body.get("reason", "")), starts, ends)
        if errors:
            raise Invalid(errors)
        silence = {
            "id": str(uuid.uuid4()),
            "matchers": matchers,
            "author": body["author"],
            "reason": body["reason"],
            "starts_at": starts,
            "ends_at": ends,
        }
        with self.lock:
            self._append(
                "silence.created", silence["id"], f"{organisation}/{body['author']}", {"silence": silence}
            )
        return silence

    def expire_silence(self, organisation: str, silence_id: str, author: str) -> None:
        with self.lock:
            if silence_id not in self.state.silences:
                raise KeyError(silence_id)
            self._append("silence.expired", silence_id, f"{organisation}/{author}", {"id": silence_id})

    # -- plumbing -----------------------------------------------------------------------------------

    def _append(self, kind: str, subject_id: str, actor: str, payload: dict):
        entry = self.writer.append(int(self.clock() * 1000), kind, subject_id, actor, payload)
        self.state.apply(entry)
        return entry

    def _publish_notification(self, p: dict) -> None:
        # Deterministic, as the schema says: the attempt's place in the ledger (the sequence its first entry
        # takes) with its group, receiver, channel, level and number; a delivery repeated after a crash
        # has the same id, so a consumer can tell it from a new attempt. It was a random uuid4.
        sequence = self.state.last.sequence + 1 if self.state.last is not None else 0
        attempt = [sequence, p["group_key"], p["receiver"], p["channel"], p["level"], p["attempt"]]
        record = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tocsin-notification:" + json.dumps(attempt))),
            "alert_ids": p["alert_ids"],
            "group_key": p["group_key"],
            "receiver": p["receiver"],
            "channel": p["channel"],
            "route": p["group_key"].split(":", 1)[0],
            "escalation_level": p["level"],
            "attempt": p["attempt"],
            "status": p["status"],
            "error": p["error"],
            "at": int(self.clock() * 1000),
            "payload_sha256": p["payload_sha256"],
        }
        value = encode(default_registry().get("Notification"), record)
        self.publish("notifications", p["alert_ids"][0].encode(), value)

    def _publish_response(self, alert_id: str, p: dict, now: float) -> None:
        # Deterministic like a Notification's: the place its entry takes in the ledger, and what it says.
        sequence = self.state.last.sequence + 1 if self.state.last is not None else 0
        answer = [sequence, alert_id, p["organisation"], p["responder"], p["kind"]]
        record = {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, "tocsin-response:" + json.dumps(answer))),
            "alert_id": alert_id,
            "organisation": p["organisation"],
            "responder": p["responder"],
            "kind": p["kind"],
            "description": p.get("description"),
            "reason": p.get("reason"),
            "referred_to": p.get("referred_to"),
            "at": int(now * 1000),
        }
        value = encode(default_registry().get("Response"), record)
        self.publish("responses", alert_id.encode(), value)


def _index(route: Route, into: dict | None = None) -> dict[str, Route]:
    into = {} if into is None else into
    into[route.id] = route
    for child in route.routes:
        _index(child, into)
    return into


def _attempts(entries: list) -> list[list]:
    """The attempts in notification entries (subject id, payload), in order: [payload, entries written];
    an attempt is an entry per alert of its payload's alert_ids, the first alert's first."""
    out: list[list] = []
    for subject_id, payload in entries:
        if subject_id == payload["alert_ids"][0] or not out:
            out.append([payload, 0])
        out[-1][1] += 1
    return out


def _plain_alert(alert: dict) -> dict:
    """A decoded alert with its times as epoch ms, so it fits in JSON ledger entries."""
    return {**alert, **{key: epoch_ms(alert[key]) for key in ALERT_TIMES}}
