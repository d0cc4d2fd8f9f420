"""The response router: read alerts, route and group them, notify, chase acknowledgements, escalate.

What to do is the engine's (engine.py, pure); this is its I/O: the alerts topic, the ledger, the
records, the lanes that send, the clock, the lock. Every decision is appended to the ledger before it
counts (see state.py): a restart replays the ledger and resumes reading alerts at the offsets it
records, so no alert is routed twice or lost and no pending escalation deadline is forgotten. One
thread decides; the HTTP API calls in under the same lock. Deciding to notify only queues the delivery
(a ledger entry, outbox.py): each channel of each receiver sends on its own thread, outside the lock
(lanes.py), so a receiver that hangs delays no other receiver, no answer and no escalation.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections import Counter

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import ProducerFencedError

from tocsin.router.config import RouterConfig
from tocsin.router.engine import Engine, Forbidden, Invalid, first_answers
from tocsin.router.lanes import Lanes
from tocsin.router.ledger import LedgerWriter
from tocsin.router.ledger_trust import UNSIGNED, LedgerTrust, read_checked
from tocsin.router.notify import Outcome, notifier_for
from tocsin.router.outbox import Pending, message_of, next_of
from tocsin.router.resend import KeepAlive
from tocsin.router.silence import validate
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
OWED = gauge(
    "tocsin_router_pending_deliveries",
    "Deliveries queued and not yet delivered or failed for good (a lane that hangs or keeps failing)",
    ["receiver"],
)
LEDGER_REFUSED = counter(
    "tocsin_router_ledger_refused_total",
    "Ledger records and checkpoints that did not verify at start: skipped, not obeyed",
)
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
__all__ = ["Forbidden", "Invalid", "Router"]


class Router:
    def __init__(
        self,
        config: RouterConfig,
        client: dict,
        topics: dict,
        clock=time.time,
        ledger: LedgerTrust = UNSIGNED,
    ):
        self.config = config
        self.client = client
        self.topics = topics  # alerts, ledger, notifications, responses
        self.clock = clock
        self.ledger = ledger  # the key it signs its ledger with, and the keys it trusts reading it back
        self.lock = threading.RLock()
        # Started with the router (start()); without them (a router driven step by step, as the unit
        # tests drive it) the deliveries a step queues are made at once, in that step (_kick).
        self.lanes: Lanes | None = None
        # Set when Kafka refused a ledger write because another router of the --ha-group took over.
        self.fenced = threading.Event()
        self.state = RouterState()
        self.started = False  # the ledger is read and the state rebuilt from it
        self.engine = Engine(config)
        self.routes = self.engine.routes
        self.keepalive = KeepAlive(config)  # re-sends firing alerts to alertmanager channels
        self.log = get_logger(stage="router")

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self, fence: str | None = None) -> None:
        """Read the ledger, rebuild the state, finish what a crash cut short, start the lanes. `fence`
        (the --ha-group): first fence every other router of the group (the writer's transactional id),
        then read: no entry of a router this one replaces can land after the ledger was read."""
        writer = None
        if fence is not None:
            writer = self._writer(None, f"tocsin-router-{fence}")
        # Only the entries that verify (router/ledger_verify.py) are replayed, and the chain goes on from
        # the last of them; any other record is skipped and reported. Refusing to start on one, as the
        # router did, let whoever can write to the topic stop it; obeying it let them acknowledge for
        # others. Nothing of the ledger is read live: a record appended while it runs is never obeyed.
        verdict = read_checked(self.client, self.topics["ledger"], self.ledger)
        for problem in verdict.problems:
            LEDGER_REFUSED.inc()
            self.log.error("ledger record refused", topic=self.topics["ledger"], problem=problem)
        if self.ledger.key is None:
            self.log.warning("ledger not signed: anyone who can write to its topic can forge it")
        entries = verdict.trusted
        self.state = RouterState.rebuilt(entries)
        if writer is None:
            writer = self._writer(self.state.last)
        writer.last = self.state.last
        self.writer = writer
        self.producer = KafkaProducer(acks="all", **self.client)
        # Each record is acknowledged before the router goes on (a Notification before the ledger entry
        # of its attempt, see record): a record left in the producer's buffer was lost with a kill -9.
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
        self.lanes = Lanes(self)
        self._resume()
        self.lanes.start()
        UNACKED.set(len(self.state.unacknowledged()))
        self.started = True
        self.log.info(
            "router started",
            ledger_entries=len(entries),
            alerts=len(self.state.alerts),
            pending_escalations=sum(1 for e in self.state.escalations.values() if not e.done),
        )

    def _writer(self, last, transactional_id: str | None = None) -> LedgerWriter:
        return LedgerWriter(
            self.client,
            self.topics["ledger"],
            last,
            self.ledger.key,
            self.ledger.checkpoints_topic,
            transactional_id=transactional_id,
        )

    def _resume(self) -> None:
        """Finish the step a crash cut short (Engine.resume), before reading on."""
        with self.lock:
            self._apply(self.engine.resume(self.state, self.clock()))

    def run(self, stop: threading.Event, poll_ms: int = 200, keep=None) -> None:
        """Read and decide until `stop`; with `keep` (a leadership's), also until it says this router is
        no longer the active one."""
        while not stop.is_set() and not self.fenced.is_set():
            if keep is not None and not keep():
                self.log.error("leadership lost: another router is active; stopping")
                return
            try:
                self.poll_once(poll_ms)
                self.tick()
            except ProducerFencedError:
                self.fenced.set()
        if self.fenced.is_set():
            self.log.error("fenced: another router of the group took over the ledger; stopping")

    def close(self) -> None:
        if self.lanes is not None:
            self.lanes.stop()
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
        held_sequence = self.engine.repeated(self.state, alert)
        if held_sequence is not None:
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
        self._apply(self.engine.receive(self.state, alert, partition, offset))

    # -- time passes --------------------------------------------------------------------------------

    def tick(self) -> None:
        with self.lock:
            now = self.clock()
            self._apply(self.engine.tick(self.state, now))  # and the retries that fell due
            UNACKED.set(len(self.state.unacknowledged()))
            self.keepalive.tick(self.state, now)  # sent off the lock, by its own thread

    def _apply(self, entries) -> None:
        """Write each entry the engine decides, applying it to the state before it decides the next;
        then the lanes are told of the deliveries queued (and of those that fell due)."""
        for kind, subject_id, actor, payload in entries:
            self._append(kind, subject_id, actor, payload)
        self._kick()

    def _kick(self) -> None:
        """Deliveries were queued or fell due: the lanes are told; without lanes, they are made now."""
        self._count_owed()
        if self.lanes is not None:
            self.lanes.wake()
            return
        lanes = {p.lane for p in self.state.pending.values()}
        for lane in sorted(lanes):
            while (owed := next_of(self.state.pending, lane)) is not None and owed.next_at <= self.clock():
                self.record(owed, *self.attempt(owed))

    def attempt(self, owed: Pending):
        """Send a delivery once: (its outcome, the SHA-256 of what was sent). Called by its lane with no
        lock held: the notifier's own timeout bounds it."""
        channel = self.config.receivers[owed.payload["receiver"]].channels[owed.payload["channel"]]
        notifier = notifier_for(channel)
        message = message_of(owed.payload)
        digest = hashlib.sha256(notifier.render(message)).hexdigest()
        try:
            return notifier.send(message), digest
        except Exception as error:  # noqa: BLE001 (a notifier's bug must not end its lane: a failure)
            self.log.exception("notifier raised", receiver=message.receiver, channel=channel.kind)
            return Outcome(False, True, f"{type(error).__name__}: {error}"), digest

    def record(self, owed: Pending, outcome, digest: str) -> None:
        """An attempt's Notification record, then its ledger entries (one per alert), under the lock."""
        payload = self.engine.attempted(owed, outcome, digest)
        p = owed.payload
        DELIVERIES.labels(p["receiver"], p["kind"], payload["status"].lower()).inc()
        if not outcome.ok:
            self.log.warning(
                "delivery failed",
                receiver=p["receiver"],
                channel=p["kind"],
                attempt=payload["attempt"],
                error=outcome.detail,
                retry_in_s=payload["retry_in_s"],
            )
        # The record first, then the ledger entries: an attempt in the ledger is on the topic too, so a
        # restart that finds it there has nothing to send or publish again. A crash between the two is
        # one between the delivery and its entry: the restarted router delivers and publishes again (at
        # least once), with the same record id.
        self._publish_notification(payload)
        for alert_id in p["alert_ids"]:
            self._append("notification", alert_id, "router", payload)
        self._count_owed()

    def _count_owed(self) -> None:
        owed = Counter(p.payload["receiver"] for p in self.state.pending.values())
        for receiver in self.config.receivers:
            OWED.labels(receiver).set(owed[receiver])

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
        with self.lock:
            payload = self.engine.answer(self.state, organisation, alert_id, body)  # Forbidden, Invalid
            now, kind = self.clock(), payload["kind"]
            first_answer, first_decision = first_answers(self.state, alert_id, kind)
            # The Response record first, acknowledged, then the ledger entry: a kill between the two
            # leaves a record the ledger does not have (the client got no answer and sends again, and the
            # record sent again has the same id), never a ledger entry whose record was lost.
            self._publish_response(alert_id, payload, now)
            self._apply(self.engine.answered(self.state, alert_id, payload))
            receiver = sorted(self.state.routed[alert_id] & self.config.receivers_of(organisation))[0]
            RESPONSES.labels(receiver, kind.lower()).inc()
            notified = self.state.first_notified.get(alert_id)
            if notified is not None and first_answer:
                TIME_TO_ACK.labels(receiver).observe(now - notified)
            if notified is not None and first_decision:
                TIME_TO_DECISION.labels(receiver).observe(now - notified)
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
        if kind == "alert.received":
            ALERTS_IN.labels(payload["alert"]["status"]).inc()
        elif kind == "escalation":
            ESCALATIONS.labels(payload["receiver"]).inc()
        self.state.apply(entry)
        return entry

    def _publish_notification(self, p: dict) -> None:
        # Deterministic, as the schema says: the delivery (its id numbers it among the queued ones) and the
        # attempt's number; a delivery repeated after a crash has the same id, so a consumer can tell it
        # from a new attempt. Not the attempt's place in the ledger: the lanes' attempts interleave there.
        attempt = [p["delivery"], p["attempt"]]
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


def _plain_alert(alert: dict) -> dict:
    """A decoded alert with its times as epoch ms, so it fits in JSON ledger entries."""
    return {**alert, **{key: epoch_ms(alert[key]) for key in ALERT_TIMES}}
