"""The broker stopped and started again twice while the chain streams (raw records -> indicator job ->
signals -> alert job -> alerts): the jobs ride out the outages without a restart and end with exactly
the last signal pane of every window and the alert events of an uninterrupted run: none lost, none
twice, none changed.

Slow (minutes): marked `faults`, run by `make test-faults`. The test has a broker of its own (the
session broker stays up for the other tests), on its own data dir and ports, which it brings back on
the same data dir and ports, so the broker comes back with its logs and the groups' commits. The records
are the UCDP GED sample as the connector writes it, fed in event-time order in chunks, so that the
indicator job closes windows and the alert job decides them all along; the restarts fall mid-stream:
a clean stop half a second after a chunk went in (the indicator job reading it), a kill -9 once that
chunk's partitions went idle (the job closing its windows and writing their signals).

What the restarts found. Prism does not retry a bundle, so each of these failed the job: the source's
end-offsets requests the broker did not answer (source_read._end_offsets), a sink or committer set up
while the broker was away, a commit on a connection the broker reset, a send that found no metadata
within 60 s (io/clients.py). And kafka-python backed off reconnecting for up to 30 s, so the sinks of
a job came back up to half a minute apart: windows one sink wrote late reached the signals topic after
later windows, and the alert job, its partitions idle meanwhile, had closed past them (thousands of
too-late dead letters; the alerts came out right only because every window also has a final pane
written by another bundle). The sink now reconnects within a second (kafka_sink.py).
"""

from __future__ import annotations

import os
import signal
import time
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from tests.conftest import DATA, ROOT, connect, wait_for
from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port
from tocsin.kafka.read import read_topic
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.indicators.normalise import RawToObservation
from tocsin.pipelines.rules.config import load_rules, packaged_rules_path
from tocsin.pipelines.rules.dryrun import dry_run
from tocsin.serde.avro import decode

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.faults]

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
LIBS = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache")) / f"kafka-{KAFKA_VERSION}" / "libs"
COMMON = ("--max-out-of-orderness", "1500000000s", "--close-when-idle", "--idle-timeout", "2s")
CHUNKS, EVERY_S = 10, 2.5  # the feed: 10 chunks of the sorted records, one every 2.5 s
DOWN_S = 5.0  # how long the broker stays down
QUIET_S = 10  # settled: nothing new for this long
STALL_S = 120  # stopped: a job with records to read has read none for this long
# (after which chunk, how long after it, how): a clean stop while the indicator job reads the chunk, a
# kill -9 once the chunk's partitions went idle (2 s) and its windows close and are written.
RESTARTS = ((3, 0.5, "stop"), (7, 2.5, "kill"))


@pytest.fixture
def broker(tmp_path):
    own = LocalBroker(
        libs_dir=LIBS, data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port()
    )
    own.start()
    yield own
    own.stop()


def client(broker: LocalBroker) -> dict:
    return {"bootstrap_servers": broker.bootstrap_servers}


def make_topics(broker: LocalBroker, run: str, **partitions: int) -> dict:
    names = {stem: f"test.{stem}.{run}.{uuid.uuid4().hex[:8]}.v1" for stem in partitions}
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.create_topics([NewTopic(names[stem], n, 1) for stem, n in partitions.items()])
    finally:
        admin.close()
    return names


def sorted_raw_records(broker: LocalBroker) -> list[tuple]:
    """The UCDP sample as the connector writes it, (key, value, headers) in event-time order."""
    staging = make_topics(broker, "staging", raw=1, connector_dlq=1, state=1)
    connect(broker.bootstrap_servers, staging, "ucdp", str(UCDP))
    to_observation = RawToObservation()

    def event_ms(record) -> int:
        try:
            return to_observation(record.value)[1]
        except Exception:  # a dead letter of the indicator job: wherever it goes, it fills no window
            return 0

    records = read_topic(client(broker), staging["raw"])
    records.sort(key=lambda r: (event_ms(r), r.offset))
    return [(r.key, r.value, list(r.headers or ())) for r in records]


def indicator_job(broker: LocalBroker, topics: dict, group: str, port: int) -> list[str]:
    return [
        "-m", "tocsin.pipelines.indicators.job",
        "--input-topic", topics["raw"], "--signals-topic", topics["signals"],
        "--dead-letter-topic", topics["dlq"], "--bootstrap-servers", broker.bootstrap_servers,
        "--group-id", group, "--window", "7d/1d", "--no-regions", "--early-after", "0",
        "--metrics-port", str(port), *COMMON,
    ]  # fmt: skip


def alert_job(broker: LocalBroker, topics: dict, group: str, port: int) -> list[str]:
    return [
        "-m", "tocsin.pipelines.rules.job",
        "--signals-topic", topics["signals"], "--alerts-topic", topics["alerts"],
        "--dead-letter-topic", topics["dlq"], "--bootstrap-servers", broker.bootstrap_servers,
        "--group-id", group, "--start", "committed", "--metrics-port", str(port), *COMMON,
    ]  # fmt: skip


def consumed(port: int) -> float:
    """Records the job has read (its Prometheus counter); 0 before its metrics answer."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return 0
    name = "tocsin_kafka_records_consumed_total{"
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def end_offsets(broker: LocalBroker, topic: str) -> list[int]:
    """Each partition's end offset: the records written to it (no transactions on these topics)."""
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return [end for _, end in sorted(consumer.end_offsets(tps).items())]
    finally:
        consumer.close()


def run_chain(broker, start_pipeline, records: list[tuple], run: str, restarts=()) -> dict:
    """Feed the records in chunks to a fresh chain (topics and groups), restarting the broker on the way
    as told; the settled signals and alert events, and what happened when."""
    topics = make_topics(broker, run, raw=3, signals=3, alerts=3, dlq=1)
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", enable_idempotence=True, linger_ms=5
    )
    size = -(-len(records) // CHUNKS)

    def feed(c: int) -> None:
        for i, (key, value, headers) in enumerate(records[c * size : (c + 1) * size], start=c * size):
            producer.send(topics["raw"], value, key=key, headers=headers or None, partition=i % 3)
        producer.flush()

    def out() -> str:
        panes, events = (sum(end_offsets(broker, topics[t])) for t in ("signals", "alerts"))
        return f"{panes} signal panes, {events} alert events out"

    # A partition that never had a record moves on with the wall clock once idle (the live default,
    # source_watermark.py): to a job started on an empty topic, every record of 1989-2022 would be late.
    # So the indicator job starts on the first chunk, and the alert job once signals are in every
    # partition of its topic.
    feed(0)
    i_port, a_port = free_port(), free_port()
    indicators = start_pipeline(*indicator_job(broker, topics, f"i-{run}", i_port))
    wait_for(
        lambda: all(end_offsets(broker, topics["signals"])) or not indicators.alive(),
        240, 1, "signals in every partition",
    )  # fmt: skip
    assert indicators.alive(), indicators.log_tail()
    alerts = start_pipeline(*alert_job(broker, topics, f"a-{run}", a_port))

    t0, done, pending = time.monotonic(), [], sorted(restarts)
    for c in range(1, CHUNKS):
        if pending and pending[0][0] == c + 1:  # both jobs have read before the broker goes down
            wait_for(lambda: consumed(a_port) or not alerts.alive(), 240, 1, "the alert job's first read")
        feed(c)
        fed = time.monotonic()
        while pending and pending[0][0] == c + 1:
            _, after_s, how = pending.pop(0)
            time.sleep(max(0.0, fed + after_s - time.monotonic()))
            before, down_at = out(), time.monotonic() - t0
            if how == "stop":
                broker.stop()
            else:
                broker.kill()
            time.sleep(DOWN_S)
            broker.start()
            done.append(
                f"{how} {after_s}s after chunk {c + 1}/{CHUNKS} at {down_at:.0f}s ({before}), "
                f"up at {time.monotonic() - t0:.0f}s"
            )
        assert indicators.alive(), indicators.log_tail()
        assert alerts.alive(), alerts.log_tail()
        time.sleep(max(0.0, fed + EVERY_S - time.monotonic()))
    producer.close()

    signals, events, target = settle(broker, topics, indicators, alerts, (i_port, a_port), len(records))
    indicators.kill()
    alerts.kill()
    dead = sum(end_offsets(broker, topics["dlq"]))
    return {
        "signals": signals,
        "alerts": events,
        "dead": dead,
        "target": target,
        "restarts": done,
        "took_s": time.monotonic() - t0,
    }


def settle(broker, topics: dict, indicators, alerts, ports: tuple[int, int], records: int):
    """The signals and alert events once the chain has caught up, and the events the rules' pure core
    decides over those signals. Caught up: each job has read all of its input (its records counter),
    nothing has changed for QUIET_S, and the alert events have reached the pure core's count (or nothing
    has changed for a minute and a half: then the comparison says what is missing). On a loaded machine
    a job can go a long while without output before its last windows close: quiet alone is no sign."""
    deadline, target, target_of = time.monotonic() + 360, None, None
    last, since = None, time.monotonic()
    while True:
        assert indicators.alive(), indicators.log_tail()
        assert alerts.alive(), alerts.log_tail()
        panes, events = (sum(end_offsets(broker, topics[t])) for t in ("signals", "alerts"))
        state = (panes, events, consumed(ports[0]), consumed(ports[1]))
        if state != last:
            last, since = state, time.monotonic()
        quiet = time.monotonic() - since
        for job, read, of in ((indicators, state[2], records), (alerts, state[3], panes)):
            if read < of and quiet >= STALL_S:
                stalled(job, f"read {read:.0f} of {of} records, nothing for {quiet:.0f}s")
        if state[2] >= records and state[3] >= panes and quiet >= QUIET_S:
            if target_of != panes:  # the pure core over the signals as they are now
                signals = [decode(r.value) for r in read_topic(client(broker), topics["signals"])]
                target = len(dry_run(load_rules(packaged_rules_path(), load_catalogue()), signals))
                target_of = len(signals)
            if target_of == panes and (events >= target or quiet >= 90):
                break
        assert time.monotonic() < deadline, f"the chain did not settle in 360s (now {state}, {target})"
        time.sleep(1)
    assert sum(end_offsets(broker, topics["signals"])) == len(signals), "signals after the chain settled"
    return signals, [decode(r.value) for r in read_topic(client(broker), topics["alerts"])], target


def stalled(job, what: str) -> None:
    """Fail on a job that stopped reading, with where its threads are: SIGABRT makes faulthandler
    (PYTHONFAULTHANDLER, set by the test) write every thread's stack to its log. Seen once in a dozen
    runs: the alert job read nothing after the broker's clean stop, and no client log came from it."""
    os.kill(job.pid, signal.SIGABRT)
    time.sleep(3)
    raise AssertionError(f"a job stopped reading ({what}); its threads:\n{job.log_tail(150)}")


def last_panes(signals: list[dict]) -> dict:
    """The last pane of every window (signal id): its highest pane index, without the wall-clock time
    it was emitted at. By pane index, not by offset: on Prism a window's on-time pane and its final
    (late) pane, fired together when the watermark passes the window's end and its lateness at once,
    reach the topic in either order, in an uninterrupted run as well."""
    last: dict = {}
    for s in signals:  # in offset order within a partition, where all panes of a window are
        if s["id"] not in last or s["pane_index"] >= last[s["id"]]["pane_index"]:
            last[s["id"]] = {k: v for k, v in s.items() if k != "emitted_at"}
    return last


def twice(items) -> list:
    seen = defaultdict(int)
    for item in items:
        seen[item] += 1
    return [item for item, n in seen.items() if n > 1]


def compared(expected: dict, got: dict) -> tuple[int, int, int]:
    """(lost, not expected, changed) between two {key: value} outcomes."""
    changed = sum(1 for key in expected.keys() & got.keys() if expected[key] != got[key])
    return len(expected.keys() - got.keys()), len(got.keys() - expected.keys()), changed


def test_two_broker_restarts_mid_stream_change_no_signal_or_alert(broker, start_pipeline, monkeypatch):
    monkeypatch.setenv("PYTHONFAULTHANDLER", "1")  # the jobs' stacks, should one stop (see stalled())
    started = time.monotonic()
    records = sorted_raw_records(broker)
    calm = run_chain(broker, start_pipeline, records, "calm")
    print(f"uninterrupted: {len(calm['signals'])} signal panes, {len(calm['alerts'])} alert events "
          f"(the rules' pure core: {calm['target']}; {calm['dead']} dead letters), "
          f"{calm['took_s']:.0f}s from the second chunk")  # fmt: skip
    restarted = run_chain(broker, start_pipeline, records, "restarted", RESTARTS)

    signals = compared(last_panes(calm["signals"]), last_panes(restarted["signals"]))
    alerts = compared(*({(a["id"], a["sequence"]): a for a in run["alerts"]} for run in (calm, restarted)))
    twice_signals = twice((s["id"], s["pane_index"]) for s in restarted["signals"])
    twice_alerts = twice((a["id"], a["sequence"]) for a in restarted["alerts"])
    print(
        f"broker restarts: {len(records)} records, {len(last_panes(restarted['signals']))} windows' signals "
        f"({len(restarted['signals'])} panes), {len(restarted['alerts'])} alert events of "
        f"{len({a['id'] for a in restarted['alerts']})} alerts; {'; '.join(restarted['restarts'])}; "
        f"signals lost/extra/changed/twice {signals[0]}/{signals[1]}/{signals[2]}/{len(twice_signals)}, "
        f"alert events {alerts[0]}/{alerts[1]}/{alerts[2]}/{len(twice_alerts)}; "
        f"{time.monotonic() - started:.0f}s in all"
    )
    assert len(restarted["restarts"]) == len(RESTARTS)
    assert len(last_panes(calm["signals"])) > 1000 and len({a["id"] for a in calm["alerts"]}) > 20
    assert twice_signals == [], "a signal pane was written twice"
    assert twice_alerts == [], "an alert event was written twice"
    assert signals == (0, 0, 0), "signals lost, not expected or changed"
    assert alerts == (0, 0, 0), "alert events lost, not expected or changed"
    assert restarted["dead"] == calm["dead"]
