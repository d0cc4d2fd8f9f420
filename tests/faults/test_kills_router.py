"""The router killed (kill -9) ten times at random moments and restarted from its ledger ends with exactly
the ledger, the Notification records and the deliveries of an uninterrupted run over the same alert
events: none lost, none twice, none changed. And the same in-process (on a clock the test moves, its
webhooks without HTTP), crashed before each of its writes in turn (every ledger entry and Notification
record of the uninterrupted run), so that every place a kill can fall between two writes is tried, not
only those ten kills happen to hit.

The stream: 32 alert events (firing, updated, resolved; an exact repeat and an older sequence, as a
producer's retry sends them) of 14 alerts in 8 countries, routed to 5 receivers (4 file channels, 2
webhook channels) in groups of up to 3 alerts, with an inhibited alert, a group that repeats and two
escalation deadlines. Slow (3 to 4 minutes): marked `faults`; TOCSIN_KILLS sets the number of kills (10).

Wall-clock time drives the router (group_wait, group_interval, repeat_interval, escalation deadlines), and
a kill stops that clock for the seconds a restart takes. So that what the router decides does not depend
on how long it was down, the stream is fed as a source slower than the router: each event once the
router has finished with the one before (its ledger shows the event read and routed, every group
notified of its content and any escalation sent), so which alerts a notification carries never depends
on how many events a router had read when a group fell due (and at most one a second, so that the
kills, one in each tenth of the ledger's entries, fall while it works). The intervals are short (1s)
where the feed waits for them, and long (1h) where nothing waits: no group repeats but the one route
whose repeat the feed waits for (15s; its alert resolves as soon as it has repeated once, so a second
repeat is 15s away, more than two restarts), and the escalation deadlines (4s) fall while the feed waits
for them, with nothing else pending.

What depends on wall-clock time, and only that, is left out of the comparison: a ledger entry's `at`
(when it was written) and so its `hash` and `prev_hash` (which cover `at`; `tocsin ledger verify` checks
the chain instead), and a Notification record's `at` (when the attempt ended). Everything else is
compared, in order: each entry's sequence, kind, subject, actor and payload (the alert, routes, groups
and what each notified, mutings, escalations, every attempt with the SHA-256 of what it sent), each
Notification record with its id, and every delivery, byte for byte, per receiver and channel.

A kill between a delivery and its ledger entry cannot be told from one before the delivery: the restarted
router sends that notification again (at least once, as README says), and publishes its record again,
with the same id. The tests count such kills (a delivery or record the ledger does not have when the
router is dead) and expect exactly one re-send each, the same bytes right after it; anything else fails.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from tests.conftest import router_serve_args, settled
from tocsin.cli import app
from tocsin.kafka.local_broker import free_port
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import chain, from_record, verify
from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.webhook import WebhookNotifier
from tocsin.router.service import Router
from tocsin.router.state import RouterState
from tocsin.serde.avro import decode, default_registry, encode

# The kills are slow (minutes: make test-faults); the in-process crash at every write runs in make test.
pytestmark = pytest.mark.integration

KILLS = int(os.environ.get("TOCSIN_KILLS", "10"))
ESCALATE_S = 4
REPEAT_S = 15
DAY = 86_400_000
T0 = 1_795_000_000_000 // DAY * DAY  # the alerts' event times: fixed, so payloads are the same in each run
IGAD = ("SDN", "ETH", "SOM")
# Receiver -> its channels, by kind; the file channels write to <run dir>/<receiver>.jsonl, the webhooks
# POST to the test's server (Webhooks; Posted in-process) at /<run dir's name>/<receiver>.
RECEIVERS = {
    "un-osapg": ("file",),
    "sdn-focal-point": ("file",),
    "igad-situation-room": ("file", "webhook"),
    "hti-desk": ("webhook",),
    "civil-society-network": ("file",),
}


CHANNELS = {name: len(kinds) for name, kinds in RECEIVERS.items()}


def router_config(run_dir: Path, hook: str) -> dict:
    def channel(receiver: str, kind: str) -> dict:
        if kind == "file":
            return {"file": {"path": str(run_dir / f"{receiver}.jsonl")}}
        return {"webhook": {"url": f"{hook}/{run_dir.name}/{receiver}"}}

    config = {
        "version": 1,
        "route": {
            "receiver": "un-osapg",
            "group_by": ["alertname", "country"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
            "routes": [
                {
                    "matchers": ['country="SDN"'],
                    "receiver": "sdn-focal-point",
                    "escalation": "sdn-to-igad",
                    "continue": True,
                },
                {
                    "matchers": ['igad="true"', 'severity=~"warning|critical"'],
                    "receiver": "igad-situation-room",
                    "continue": True,
                },
                {"matchers": ['country="HTI"'], "receiver": "hti-desk", "repeat_interval": f"{REPEAT_S}s"},
                {"matchers": ['severity=~"watch|warning|critical"'], "receiver": "civil-society-network"},
            ],
        },
        "escalations": {
            "sdn-to-igad": {"steps": [{"receiver": "igad-situation-room", "after": f"{ESCALATE_S}s"}]}
        },
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="watch"'],
                "equal": ["country", "alertname"],
            }
        ],
        "receivers": [
            {"name": name, "organisation": "un", "channels": [channel(name, kind) for kind in kinds]}
            for name, kinds in RECEIVERS.items()
        ],
        "organisations": [{"name": "un", "token_sha256": "0" * 64}],
        "retry": {"attempts": 3, "backoff": "1s"},
    }
    return config


# -- the stream ---------------------------------------------------------------------------------------


class Stream:
    """The alert events, in order, with the points where the feed waits for a time-driven decision."""

    def __init__(self):
        self.steps: list[tuple] = []
        self.alerts: dict[str, dict] = {}

    def alert_id(self, rule: str, country: str, region: str | None) -> str:
        return f"{rule}:{country}{'/' + region if region else ''}:2026-11-20T00:00Z"

    def event(self, rule, country, severity, value, region=None, resolve=False):
        alert_id = self.alert_id(rule, country, region)
        held = self.alerts.get(alert_id)
        sequence = 1 if held is None else held["sequence"] + 1
        day = T0 + sequence * DAY
        status = "RESOLVED" if resolve else ("FIRING" if held is None else "UPDATED")
        labels = {"alertname": rule, "country": country, "severity": severity.lower()}
        if country in IGAD:
            labels["igad"] = "true"
        alert = {
            "id": alert_id,
            "sequence": sequence,
            "rule_id": rule,
            "rule_version": "0123456789ab",
            "status": status,
            "severity": severity,
            "country": country,
            "region": region,
            "risk_factors": [1],
            "indicator_ids": [f"{rule}.count"],
            "values": [
                {"name": f"{rule} count", "value": float(value), "threshold": 10.0, "comparator": ">="}
            ],
            "window_start": day - 7 * DAY,
            "window_end": day,
            "evidence": [
                {"record_id": f"ucdp-ged:{country}{sequence}", "title": None, "url": None, "source": None}
            ],
            "distinct_sources": 3,
            "summary": f"{rule} {status.lower()} for {country} at {value}",
            "first_fired": T0 + DAY if held is None else held["first_fired"],
            "last_updated": day,
            "labels": labels,
        }
        self.alerts[alert_id] = alert
        self.steps.append(("event", alert))
        return alert_id

    def again(self, alert: dict) -> None:
        """An event the router already has (a producer's retry): it must be ignored, with no entry."""
        self.steps.append(("again", alert))

    def hold(self, what: str, key: str) -> None:
        self.steps.append(("hold", what, key))


def the_stream() -> Stream:
    s = Stream()
    s.event("armed-conflict", "NGA", "WARNING", 14)
    eth = s.event("armed-conflict", "ETH", "WARNING", 18)
    s.event("hate-speech", "ETH", "WATCH", 3)
    s.event("armed-conflict", "MLI", "WATCH", 4)
    s.event("attacks-on-civilians", "SOM", "CRITICAL", 41)
    s.event("armed-conflict", "UKR", "INFO", 2)
    s.event("armed-conflict", "NGA", "WATCH", 5, region="Borno")  # grouped with NGA's country alert
    s.event("armed-conflict", "NGA", "WARNING", 11, region="Kano")
    first_nga = dict(s.alerts[s.alert_id("armed-conflict", "NGA", None)])
    s.event("armed-conflict", "NGA", "CRITICAL", 130)  # now mutes Borno's watch (inhibition)
    s.event("hate-speech", "SOM", "WARNING", 11)
    s.event("armed-conflict", "ETH", "WARNING", 25)
    s.again(s.alerts[eth])  # the same sequence again
    s.event("armed-conflict", "BFA", "WARNING", 16)
    # An escalating route: nobody answers, the region is told after the deadline, while nothing else moves.
    sdn = s.event("armed-conflict", "SDN", "WARNING", 20)
    s.hold("escalation", sdn)
    s.event("armed-conflict", "SDN", "CRITICAL", 140)
    s.event("armed-conflict", "HTI", "WARNING", 12)
    s.hold("repeat", 'root.2:{alertname="armed-conflict",country="HTI"}')
    s.event("armed-conflict", "HTI", "WARNING", 3, resolve=True)
    s.event("attacks-on-civilians", "ETH", "CRITICAL", 44)
    s.event("hate-speech", "ETH", "WARNING", 12)  # now also to the region: a new group there
    s.again(first_nga)  # an older sequence
    s.event("armed-conflict", "MLI", "WARNING", 15)
    s.event("armed-conflict", "NGA", "WATCH", 2, region="Borno", resolve=True)
    hate_sdn = s.event("hate-speech", "SDN", "WATCH", 4)
    s.hold("escalation", hate_sdn)
    s.event("attacks-on-civilians", "SOM", "CRITICAL", 2, resolve=True)
    s.event("armed-conflict", "UKR", "INFO", 3)
    s.event("armed-conflict", "NGA", "WARNING", 1, region="Kano", resolve=True)
    s.event("armed-conflict", "NGA", "CRITICAL", 4, resolve=True)
    s.event("armed-conflict", "ETH", "WARNING", 1, resolve=True)
    s.event("armed-conflict", "SDN", "CRITICAL", 6, resolve=True)
    s.event("armed-conflict", "BFA", "CRITICAL", 160)
    s.event("armed-conflict", "MLI", "WARNING", 1, resolve=True)
    s.event("hate-speech", "SOM", "WARNING", 2, resolve=True)
    s.event("armed-conflict", "UKR", "INFO", 0, resolve=True)
    s.event("hate-speech", "ETH", "CRITICAL", 30)
    return s


# -- what the router did ------------------------------------------------------------------------------


class Progress:
    """The router's ledger, applied as it comes: where the router is in the stream, for the feed's gate."""

    def __init__(self):
        self.state, self.seen, self.last_kind = RouterState(), 0, None
        self.notified: Counter = Counter()  # group key -> group.notified entries
        self.escalation: list | None = None  # the last one: [group key, receiver, final attempts after it]

    def update(self, entries: list) -> Progress:
        for e in entries[self.seen :]:
            self.state.apply(e)
            self.last_kind = e.kind
            if e.kind == "escalation":
                self.escalation = [
                    f"escalation:{e.subject_id}:{e.payload['level']}",
                    e.payload["receiver"],
                    0,
                ]
            elif e.kind == "group.notified":
                self.notified[e.subject_id] += 1
            elif (
                e.kind == "notification" and self.escalation and e.payload["group_key"] == self.escalation[0]
            ):
                self.escalation[2] += e.payload["status"] != "RETRYING"
        self.seen = len(entries)
        return self

    def finished(self, step: tuple, next_offset: int) -> bool:
        """The router has done what this step of the stream makes it do, and nothing is under way."""
        state = self.state
        if state.offsets.get(0, 0) < next_offset or self.last_kind == "alert.received":  # routed next
            return False
        if any(g.content() != g.notified for g in state.groups.values()):
            return False
        if self.escalation and self.escalation[2] < CHANNELS[self.escalation[1]]:
            return False
        if state.pending:  # deliveries still owed (their lanes send them)
            return False
        if step[0] == "hold" and step[1] == "escalation":
            return state.escalations[step[2]].level == 1
        if step[0] == "hold":
            return self.notified[step[2]] >= 2  # notified, then repeated
        return True


def recorded_attempts(entries) -> dict[tuple[str, str], int]:
    """Delivered attempts per receiver and channel, as the ledger records them (an attempt for a group
    of alerts is an entry per alert: counted once, by its first alert's)."""
    counts: Counter = Counter()
    for e in entries:
        if e.kind == "notification" and e.payload["status"] == "DELIVERED":
            if e.subject_id == e.payload["alert_ids"][0]:
                counts[e.payload["receiver"], e.payload["channel"]] += 1
    return counts


def attempts(entries) -> Counter:
    """Attempts per receiver and channel (each one Notification record), as the ledger records them."""
    return Counter(
        (e.payload["receiver"], e.payload["channel"])
        for e in entries
        if e.kind == "notification" and e.subject_id == e.payload["alert_ids"][0]
    )


class Resent:
    """What a dead router had delivered or published that its ledger does not record: the restarted one
    sends and publishes it again (at least once). The one difference allowed, at exactly those places."""

    def __init__(self):
        self.deliveries: dict[tuple, list[int]] = {}  # channel -> index of each delivery re-sent
        self.records: dict[tuple, list[int]] = {}  # channel -> index of each Notification record again

    def count(self, entries: list, deliveries: dict, records: list) -> bool:
        recorded, found = recorded_attempts(entries), False
        for channel, lines in deliveries.items():
            extra = len(lines) - len(self.deliveries.get(channel, [])) - recorded[channel]
            assert extra in (0, 1), f"{channel}: {extra:+d} deliveries against the ledger"
            if extra:
                self.deliveries.setdefault(channel, []).append(len(lines) - 1)
                found = True
        recorded, extras = attempts(entries), 0
        for channel, published in by_channel(records).items():
            extra = len(published) - len(self.records.get(channel, [])) - recorded[channel]
            assert extra in (0, 1), f"{channel}: {extra:+d} Notification records against the ledger"
            if extra:
                self.records.setdefault(channel, []).append(len(published) - 1)
            extras += extra
        assert extras <= 1, f"{extras} Notification records the ledger does not have, in several channels"
        return found

    def removed(self, deliveries: dict, records: dict) -> tuple[dict, dict]:
        """deliveries and records (by channel) without the re-sends, each checked to repeat exactly what
        it re-sends."""

        def without(found: list, resent: list[int], what) -> list:
            out = list(found)
            for i in sorted(resent, reverse=True):
                assert i + 1 < len(out) and out[i + 1] == out[i], f"{what}: {i} not re-sent right after"
                del out[i + 1]
            return out

        kept = {c: without(lines, self.deliveries.get(c, []), c) for c, lines in deliveries.items()}
        return kept, {c: without(found, self.records.get(c, []), c) for c, found in records.items()}

    def __len__(self) -> int:
        return sum(map(len, self.deliveries.values()))


def by_channel(records: list) -> dict[tuple, list]:
    """Notification records per receiver and channel (a lane), in the order they were published."""
    out: dict[tuple, list] = {}
    for r in records:
        out.setdefault((r["receiver"], r["channel"]), []).append(r)
    return out


def outcome(entries: list, records: list, deliveries: dict) -> tuple[tuple, dict, dict]:
    """What must not depend on wall-clock time: all but an entry's `at`, `hash`, `prev_hash` and a
    record's `at`; and, since each receiver's channel sends on its own lane, not how the lanes' attempts
    interleave with the router's decisions and with each other in the ledger (and so not the entries'
    sequence numbers): the decisions in order, each delivery's attempts in order, each lane's records in
    order."""
    decisions = [(e.kind, e.subject_id, e.actor, e.payload_json) for e in entries if e.kind != "notification"]
    made: dict[str, list] = {}
    for e in entries:
        if e.kind == "notification":
            made.setdefault(e.payload["delivery"], []).append((e.subject_id, e.payload_json))
    published = {
        channel: [{k: v for k, v in r.items() if k != "at"} for r in found]
        for channel, found in by_channel(records).items()
    }
    return (decisions, made), published, deliveries


def first_difference(got: tuple, expected: tuple) -> str:
    (decisions, made), (expected_decisions, expected_made) = got, expected
    at = next(
        (i for i, (a, b) in enumerate(zip(decisions, expected_decisions, strict=False)) if a != b), None
    )
    if at is not None:
        return f"at decision {at}: {decisions[at]}, expected {expected_decisions[at]}"
    if len(decisions) != len(expected_decisions):
        return f"{len(decisions)} decisions, {len(expected_decisions)} expected"
    for delivery in sorted(set(made) | set(expected_made)):
        if made.get(delivery) != expected_made.get(delivery):
            return f"delivery {delivery}: {made.get(delivery)}, expected {expected_made.get(delivery)}"
    return "the same"


class Webhooks(ThreadingHTTPServer):
    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):  # noqa: N802, N805
                length = int(handler.headers["Content-Length"])
                body = handler.rfile.read(length)
                if len(body) < length:  # the router was killed while it sent: not delivered
                    return
                with self.lock:
                    self.received.append((handler.path, body))
                handler.send_response(200)
                handler.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def deliveries(run_dir: Path, webhooks: Webhooks | Posted) -> dict[tuple[str, str], list[bytes]]:
    """Every delivery of a run per receiver and channel: the file channels' lines, the webhooks' bodies."""
    with webhooks.lock:
        posted = list(webhooks.received)
    out = {}
    for receiver, kinds in RECEIVERS.items():
        for kind in kinds:
            if kind == "file":
                path = run_dir / f"{receiver}.jsonl"
                out[receiver, kind] = path.read_bytes().splitlines() if path.exists() else []
            else:
                out[receiver, kind] = [b for p, b in posted if p == f"/{run_dir.name}/{receiver}"]
    return out


def total(found: dict) -> int:
    return sum(len(v) for v in found.values())


@pytest.fixture
def webhooks():
    server = Webhooks()
    yield server
    server.shutdown()


# -- the router as a process, on the broker -----------------------------------------------------------


class Tail(threading.Thread):
    """Every record of a one-partition topic, decoded, as it arrives (a few ms after it is written)."""

    def __init__(self, bootstrap: str, topic: str, convert=lambda record: record):
        super().__init__(daemon=True)
        self.bootstrap = bootstrap
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        self.tp = TopicPartition(topic, 0)
        self.consumer.assign([self.tp])
        self.consumer.seek_to_beginning(self.tp)
        self.convert = convert
        self.records: list = []
        self.changed = threading.Condition()
        self.stopping = False
        self.position = 0
        self.start()

    def run(self):
        while not self.stopping:
            batches = self.consumer.poll(timeout_ms=50)
            with self.changed:
                for batch in batches.values():
                    self.records.extend(self.convert(decode(r.value)) for r in batch)
                # The consumer's position, not the last record's offset + 1: a transactional ledger (the
                # routers of an --ha-group write one) has commit markers, which take offsets too.
                self.position = self.consumer.position(self.tp)
                self.changed.notify_all()
        self.consumer.close()

    def caught_up(self, timeout: float = 30) -> list:
        """Every record written so far (to the end offset now: of committed records, the last stable
        offset, for a transactional ledger), once read."""
        probe = KafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level="read_committed")
        end = probe.end_offsets([self.tp])[self.tp]
        probe.close()
        with self.changed:
            assert self.changed.wait_for(lambda: self.position >= end, timeout), f"{self.tp} not read"
            return list(self.records)

    def wait(self, predicate, timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(lambda: predicate(self.records), timeout)

    def stop(self):
        self.stopping = True
        self.join(10)


class Run:
    """One run of `tocsin router serve` over the stream: its topics, its receivers' output, the feed."""

    def __init__(self, name, bootstrap, make_topic, tmp_path, webhooks: Webhooks):
        self.name, self.bootstrap, self.webhooks = name, bootstrap, webhooks
        self.topics = {
            t: make_topic(f"{t}-{name}") for t in ("alerts", "ledger", "notifications", "responses")
        }
        self.dir = tmp_path / name
        self.dir.mkdir()
        config = self.dir / "routes.yaml"
        config.write_text(yaml.safe_dump(router_config(self.dir, webhooks.url)))
        self.args = router_serve_args(config, bootstrap, free_port(), self.topics)
        self.ledger = Tail(bootstrap, self.topics["ledger"], from_record)
        self.notifications = Tail(bootstrap, self.topics["notifications"])
        self.error: BaseException | None = None

    def deliveries(self) -> dict:
        return deliveries(self.dir, self.webhooks)

    def feed(self, stream: Stream) -> threading.Thread:
        """Each event onto the alerts topic once the router has finished with the one before."""

        def run():
            try:
                self._feed(stream)
            except BaseException as error:  # noqa: BLE001 (reported by the test's thread)
                self.error = error

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def _feed(self, stream: Stream) -> None:
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        schema = default_registry().get("Alert")
        progress, next_offset, fed = Progress(), 0, 0.0
        for step in stream.steps:
            if step[0] != "hold":
                # At most an event a second, so that the kills, spread over the entries, fall while it
                # works (routing an update takes a few milliseconds; a new group waits its group_wait).
                time.sleep(max(0.0, fed + 1 - time.monotonic()))
                fed, alert = time.monotonic(), step[1]
                sent = producer.send(self.topics["alerts"], encode(schema, alert), key=alert["id"].encode())
                next_offset = sent.get(timeout=30).offset + 1
                if step[0] == "again":
                    continue  # nothing to wait for: the next event's entries show it was read past
            if not self.ledger.wait(
                lambda entries, s=step, n=next_offset: progress.update(entries).finished(s, n), 150
            ):
                raise AssertionError(f"{self.name}: the router did not finish {step[:2]} {step[-1]}")
        producer.close()

    def reach(self, entries: int, feed: threading.Thread, timeout: float = 120) -> None:
        """Until the ledger has `entries` entries, or the stream is all fed and routed (no more come)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ledger.wait(lambda r: len(r) >= entries, 0.5 if feed.is_alive() else 0):
                return
            if not feed.is_alive():
                return

    def outcome(self) -> tuple[list, list, dict]:
        return outcome(self.ledger.caught_up(), self.notifications.caught_up(), self.deliveries())

    def close(self):
        self.ledger.stop()
        self.notifications.stop()


def uninterrupted(stream, bootstrap, make_topic, start_pipeline, webhooks, tmp_path) -> tuple[tuple, int]:
    """The outcome of one router over the whole stream, never killed, and its number of ledger entries."""
    calm = Run("calm", bootstrap, make_topic, tmp_path, webhooks)
    router = start_pipeline(*calm.args)
    feed = calm.feed(stream)
    feed.join(300)
    assert calm.error is None, f"{calm.error}\n{router.log_tail()}"
    settled(lambda: len(calm.ledger.records), router, 4, 120, "the calm ledger")
    router.kill()
    found = calm.outcome(), len(calm.ledger.caught_up())
    calm.close()
    return found


def assert_as_uninterrupted(got: tuple, expected: tuple, resent: Resent, bootstrap: str, ledger_topic: str):
    """The killed run's ledger, Notification records and deliveries are the uninterrupted run's (but
    for the re-sends of kills between a delivery and its entry), and its ledger verifies."""
    (ledger, records, delivered), (expected_ledger, expected_records, expected_deliveries) = got, expected
    assert ledger == expected_ledger, first_difference(ledger, expected_ledger)
    delivered, records = resent.removed(delivered, records)
    assert records == expected_records
    for channel, lines in delivered.items():
        assert lines == expected_deliveries[channel], channel
    verified = CliRunner().invoke(
        app, ["ledger", "verify", "-b", bootstrap, "--topic", ledger_topic, "--allow-unsigned"]
    )  # its routers are given no key: an unsigned ledger (the signed one: tests/integration/test_router.py)
    assert verified.exit_code == 0, verified.output


@pytest.mark.faults
def test_ten_kills_of_the_router_change_no_notification_or_ledger_entry(
    bootstrap, make_topic, start_pipeline, webhooks, tmp_path
):
    started = time.monotonic()
    stream = the_stream()
    (expected_ledger, expected_records, expected_deliveries), entries = uninterrupted(
        stream, bootstrap, make_topic, start_pipeline, webhooks, tmp_path
    )
    kinds = Counter(e[0] for e in expected_ledger[0])
    assert kinds["escalation"] == 2 and kinds["alert.muted"] >= 1, kinds
    assert max(len(json.loads(e[3]).get("content", [])) for e in expected_ledger[0]) >= 3  # grouped by 3
    assert len(expected_deliveries["hti-desk", "webhook"]) == 3  # firing, repeated, resolved

    killed = Run("killed", bootstrap, make_topic, tmp_path, webhooks)
    rng = random.Random(20261201)
    feed = killed.feed(stream)
    kill_points, resent = [], Resent()
    # Where the kills fall: one in each tenth of the stream, by the ledger entries written.
    targets = [int((k + rng.random()) * entries / KILLS) for k in range(KILLS)]
    for k, target in enumerate(targets):
        router = start_pipeline(*killed.args)
        if k % 2:  # at a random moment once there: still starting, rebuilding, reading, notifying or idle
            killed.reach(target, feed)
            time.sleep(rng.uniform(0, 2))
        elif k % 4 == 0:  # within 10 ms of a new ledger entry: the target, or the first this router writes
            killed.reach(max(target, len(killed.ledger.records) + 1), feed)
            time.sleep(rng.uniform(0, 0.01))
        else:  # within 10 ms of the first delivery from there
            killed.reach(target, feed)
            delivered, deadline = total(killed.deliveries()), time.monotonic() + 60
            while total(killed.deliveries()) == delivered and time.monotonic() < deadline and feed.is_alive():
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.01))
        router.kill()
        ledger = killed.ledger.caught_up()
        cut = resent.count(ledger, killed.deliveries(), killed.notifications.caught_up())
        kill_points.append(f"{len(ledger)}{'*' if cut else ''}")
        assert killed.error is None, killed.error
    router = start_pipeline(*killed.args)
    feed.join(300)
    assert killed.error is None, f"{killed.error}\n{router.log_tail()}"
    settled(lambda: len(killed.ledger.records), router, 4, 120, "the killed run's ledger")
    ledger, records, delivered = killed.outcome()
    killed.close()
    router.kill()

    assert_as_uninterrupted(
        (ledger, records, delivered),
        (expected_ledger, expected_records, expected_deliveries),
        resent,
        bootstrap,
        killed.topics["ledger"],
    )
    print(
        f"\nrouter killed {KILLS} times: {total(expected_deliveries)} deliveries, {entries} ledger entries, "
        f"{total(expected_records)} Notification records, as uninterrupted; kills at ledger entries "
        f"{', '.join(kill_points)} (*: between a delivery and its entry, re-sent once: {len(resent)} "
        f"deliveries, {total(resent.records)} records); {time.monotonic() - started:.0f}s"
    )


# -- the router in-process, crashed before each of its writes ------------------------------------------


class Posted:
    """The webhook receiver of the in-process runs, without HTTP (the broker test has the real one): what
    each POST would carry, by path, as Webhooks keeps it."""

    url = "http://webhooks.invalid"

    def __init__(self):
        self.received: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def send(self, notifier, message) -> Outcome:  # as WebhookNotifier.send, answered 200
        with self.lock:
            self.received.append((urlsplit(notifier.spec.url).path, notifier.render(message)))
        return Outcome(True, detail="HTTP 200")


class Crash(BaseException):
    """kill -9, in-process: the router stops before a write, and what it had in memory is gone."""


class Durable:
    """What outlives the router: its ledger and its Notification records (in memory here), each write
    counted; the router crashes before write number `crash_at`."""

    def __init__(self, crash_at: int | None = None):
        self.entries, self.records, self.writes, self.crash_at = [], [], 0, crash_at

    def write(self) -> None:
        if self.writes == self.crash_at:
            self.crash_at = None
            raise Crash
        self.writes += 1

    def append(self, at_ms, kind, subject_id, actor, payload):  # as LedgerWriter.append
        self.write()
        self.entries.append(
            chain(self.entries[-1] if self.entries else None, at_ms, kind, subject_id, actor, payload)
        )
        return self.entries[-1]

    def publish(self, topic, key, value) -> None:  # as Router.publish
        self.write()
        self.records.append(decode(value))


def replay(stream: Stream, run_dir: Path, webhooks: Posted, crash_at: int | None = None):
    """The stream through an in-process router on a clock the replay moves (1s a tick), fed as the
    broker test feeds it; crashed before write `crash_at` and restarted from what it had written (as
    `Router.start` does: the state rebuilt from the ledger, the interrupted step resumed, the alerts read
    from the offset the ledger gives). Returns what outlived it, and what it had sent that its ledger did
    not record when it crashed (to be sent again)."""
    run_dir.mkdir()
    config = parse_router_config(router_config(run_dir, webhooks.url))
    durable, clock, topic, resent = Durable(crash_at), [1_800_000_000.0], [], Resent()

    def start() -> Router:
        router = Router(config, client={}, topics={}, clock=lambda: clock[0])
        router.writer, router.publish = durable, durable.publish
        router.state = RouterState.rebuilt(durable.entries)
        router._resume()  # as Router.start, once the state is rebuilt
        return router

    router, progress = start(), Progress()
    read = 0
    for step in stream.steps:
        if step[0] != "hold":
            topic.append(step[1])
            if step[0] == "again":
                continue
        for _ in range(100):
            try:
                while read < len(topic):
                    router.receive(dict(topic[read]), 0, read)
                    read += 1
                if progress.update(durable.entries).finished(step, len(topic)):
                    break
                clock[0] += 1
                router.tick()
            except Crash:
                resent.count(durable.entries, deliveries(run_dir, webhooks), durable.records)
                router = start()
                read = router.state.offsets.get(0, 0)
        else:
            raise AssertionError(f"{run_dir.name}: the router did not finish {step[:2]} {step[-1]}")
    return durable, resent


def test_a_crash_before_any_write_of_the_router_is_resumed_exactly(tmp_path, monkeypatch):
    started = time.monotonic()
    stream, webhooks = the_stream(), Posted()
    monkeypatch.setattr(WebhookNotifier, "send", lambda notifier, message: webhooks.send(notifier, message))
    calm, _ = replay(stream, tmp_path / "calm", webhooks)
    expected = outcome(calm.entries, calm.records, deliveries(tmp_path / "calm", webhooks))
    cuts = 0
    for crash_at in range(calm.writes):
        run_dir = tmp_path / f"crash-{crash_at}"
        durable, resent = replay(stream, run_dir, webhooks, crash_at)
        assert durable.crash_at is None, f"no crash before write {crash_at}"
        assert verify(durable.entries) == []
        ledger, records, delivered = outcome(durable.entries, durable.records, deliveries(run_dir, webhooks))
        assert ledger == expected[0], (
            f"crash before write {crash_at}: {first_difference(ledger, expected[0])}"
        )
        delivered, records = resent.removed(delivered, records)
        assert (records, delivered) == expected[1:], f"crash before write {crash_at}"
        cuts += bool(len(resent) or resent.records)
        with webhooks.lock:
            webhooks.received = [
                (p, b) for p, b in webhooks.received if not p.startswith(f"/{run_dir.name}/")
            ]
    print(
        f"\nrouter crashed in-process before each of its {calm.writes} writes ({len(calm.entries)} ledger "
        f"entries, {len(calm.records)} Notification records): each resumed to the same ledger, records "
        f"and deliveries; {cuts} crashes between a delivery and its entry, re-sent once; "
        f"{time.monotonic() - started:.0f}s"
    )
