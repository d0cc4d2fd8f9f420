"""The indicator job and a file connector killed (kill -9) at random points and restarted from their
commits end with exactly what an uninterrupted run gives: no window or record lost, twice or changed.

Slow (minutes): marked `faults`, run by `make test-faults`; TOCSIN_KILLS sets the number of kills (10).

Indicator job. Input: the committed UCDP GED sample as the connector's parser reads it, its 1,000
events in file order (oldest first) re-dated four a day from 1 January 2020, each keeping its span of
days: over the sample's own 34 years a week holds one event or none, and a commit would never fall
inside a busy window; re-dated, a week holds 28. Round robin on three partitions. The job runs with
one window spec (7d/1d, per country), no early panes, the default allowed lateness (2d),
out-of-orderness 7d and --close-when-idle. The uninterrupted run reads the records as a backlog. The
killed runs read them as a live topic, fed over 150s while they are killed and restarted: read as a
backlog, a partition goes in one read call, its one progress marker comes after its last window and
the job commits nothing before the end of the data, so every restart would start from the beginning;
fed, the job commits as it goes, and restarts resume from commits (the figure printed says how far
each kill found them). Which records count in which window depends only on the records before them
in their partition (exact lateness), not on how the reads fell, so the two runs must agree. (The GDELT
exports are not used: their 9,354 events span three days, which the watermark crosses at once, so the
job would commit nothing while they are fed.)

What a closed window is. With --early-after 0 a window's panes are: ON_TIME when the watermark passes
its end, then LATE ones for late records within the allowed lateness, which Prism fires only when the
window closes (its end plus the lateness), and then once even without late data: a closing pane that
repeats the window's accumulated value. The input is in event-time order per partition, so no record
is behind its partition's watermark: the ON_TIME pane is complete and final, and the closing LATE pane
(of the windows ending 2d before the end of the data) carries the same value; the uninterrupted run is
checked for exactly that. A *closed window* is one whose ON_TIME pane was emitted: every window ending
by the watermark the data closes at (the earliest of the partitions' latest event times); the windows
after it stay open and emit nothing. A restarted job re-emits, whole and under the same key, the
windows ending after its last commit's floor (CommitWhenDurable: at-least-once, idempotent output on a
compacted topic), so the killed runs may publish a window's panes more than once. What a consumer
relies on is a window's final pane (the highest pane index: the panes of one window can reach the topic
out of order, LATE before ON_TIME, and the uninterrupted run counts how often), and, since the alert
job acts on every pane it reads, every pane published. Both are compared with the uninterrupted run:
the same closed windows, the same final pane, and every pane of each with the same value (count,
weighted count, fatalities, distinct sources, evidence, risk factors); the dead letters stand for the
same input records. The re-emitted panes are counted and printed.

A restart after the partitions committed different floors: the state a kill can leave (a timer of the
committer commits only the partitions with a marker ready), written as the committer writes it, then
one restart; it re-emitted undercounted windows when a restart took the smallest floor (see
`resume_floor` in pipelines/io/commit.py). The ten kills reach that state only now and then.

Connector. `tocsin connect gdelt --dir` over the 32 export files, 50 records a transaction (about 190
transactions, crossing file boundaries), killed at random and restarted with its state topic: the
record ids read with read_committed (as every tocsin consumer reads) are those of an uninterrupted run,
each once. Half of the kills come in a restart's first seconds (start-up, loading the cursor, the
first batches), half at a random point of each fifth of the replay (for ten kills), within 0.2s of
the topic's end offsets passing it, i.e. while it writes: some cut a transaction off after its
records reached the broker. Those records stay on the topic, aborted; the test counts them
(read_uncommitted) to show what exactly-once rests on: the records and the cursor in one
transaction, and consumers that read committed data only.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import threading
import time
from collections import Counter

import pytest
from confluent_kafka import Producer
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tests.conftest import DATA, settled
from tocsin.formats import ucdp
from tocsin.kafka.read import read_topic
from tocsin.serde.avro import decode, default_registry, encode

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.faults]

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
GDELT = DATA / "gdelt2" / "export_15min"
KILLS = int(os.environ.get("TOCSIN_KILLS", "10"))
# The sample's 34 years hold a 7-day window's worth of events every 12 days or so; re-dated four a day,
# a week holds 28, so that the commits cut through busy windows.
DAY0, PER_DAY = dt.datetime(2020, 1, 1, tzinfo=dt.UTC), 4
FEED_S, FEED_STEP_S = 150, 0.25  # the killed runs' input arrives over 150s, as on a live topic
ON_TIME, LATE = ("ON_TIME", 0), ("LATE", 1)
WINDOWS = ("--window", "7d/1d", "--no-regions", "--early-after", "0")
# A partition is idle after 5s without a record (the feed never pauses that long); then, with
# --close-when-idle, at its latest event time, so the windows up to the end of the data close.
REPLAY = ("--max-out-of-orderness", "7d", "--close-when-idle", "--idle-timeout", "5s")


# ---------------------------------------------------------------------------------------------- helpers


class Output:
    """Records written to a topic so far (the sum of its end offsets, uncommitted transactions
    included): cheap, for watching a stage's output; one consumer for all the looks."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.partitions = [
            TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))
        ]

    def __call__(self) -> int:
        return sum(self.consumer.end_offsets(self.partitions).values())

    def close(self) -> None:
        self.consumer.close()


def committed(bootstrap: str, topic: str, group: str) -> list[int | None]:
    """The group's committed offset of each partition of the topic (None: none yet)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        parts = sorted(consumer.partitions_for_topic(topic) or ())
        return [consumer.committed(TopicPartition(topic, p)) for p in parts]
    finally:
        consumer.close()


def read_uncommitted(bootstrap: str, topic: str) -> list:
    """Every record of the topic, aborted transactions included (what read_committed hides)."""
    return read_topic({"bootstrap_servers": bootstrap}, topic, isolation_level="read_uncommitted")


def kill_when(job, ready, delay_s: float) -> None:
    """Kill -9 the job `delay_s` after ready() is true (at once: its start), or after it has ended."""
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and job.alive() and not ready():
        time.sleep(0.05)
    time.sleep(delay_s)
    job.kill()


# ---------------------------------------------------------------------------------------------- indicators


def incident_records() -> list[tuple[bytes, bytes]]:
    """The UCDP sample as the connector's parser reads it, in file order (oldest event first), re-dated
    PER_DAY events a day from DAY0, each keeping its span of days (date_end), as (key, value)."""
    with UCDP.open(encoding="utf-8", newline="") as text:
        records = [item for _, item in ucdp.parse_csv(text, UCDP.name) if isinstance(item, dict)]
    assert [r["event_time"] for r in records] == sorted(r["event_time"] for r in records)
    schema = default_registry().get("IncidentReport")
    out = []
    for n, record in enumerate(records):
        at = DAY0 + dt.timedelta(days=n // PER_DAY)
        attributes = dict(record["attributes"])
        if "date_end" in attributes:
            was = dt.datetime.fromtimestamp(record["event_time"] / 1000, dt.UTC).date()
            attributes["date_end"] = (
                at.date() + (dt.date.fromisoformat(attributes["date_end"][:10]) - was)
            ).isoformat()
        redated = {**record, "event_time": int(at.timestamp() * 1000), "attributes": attributes}
        out.append((record["id"].encode(), encode(schema, redated)))
    return out


class Feed(threading.Thread):
    """Put the records on the topic over `seconds`, a few at a time, round robin on its three partitions
    (each partition in event-time order too): a live topic. With no `seconds`, all at once."""

    def __init__(self, bootstrap: str, topic: str, records: list[tuple[bytes, bytes]], seconds: float = 0):
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.records, self.seconds = bootstrap, topic, records, seconds
        self.error: BaseException | None = None

    def run(self) -> None:
        producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5, "enable.idempotence": True})
        try:
            size = -(-len(self.records) // max(int(self.seconds / FEED_STEP_S), 1))
            chunks = range(0, len(self.records), size)
            t0 = time.monotonic()
            for step, first in enumerate(chunks):
                for i, (key, value) in enumerate(self.records[first : first + size], start=first):
                    producer.produce(self.topic, value, key=key, partition=i % 3)
                assert producer.flush(30) == 0
                time.sleep(max(t0 + (step + 1) * self.seconds / len(chunks) - time.monotonic(), 0))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            producer.close()

    def done(self, timeout: float) -> None:
        self.join(timeout)
        assert not self.is_alive() and self.error is None, self.error


def indicator_job(bootstrap: str, raw: str, signals: str, dlq: str, group: str) -> list[str]:
    return [
        "-m", "tocsin.pipelines.indicators.job", "--input-topic", raw, "--signals-topic", signals,
        "--dead-letter-topic", dlq, "--bootstrap-servers", bootstrap, "--group-id", group,
        "--start", "committed", *WINDOWS, *REPLAY,
    ]  # fmt: skip


def panes(bootstrap: str, topic: str) -> list[tuple[str, tuple[str, int], tuple]]:
    """Every pane on the topic, in offset order per partition (a signal id is always on one):
    (signal id, (kind of pane, pane index), the window's value)."""
    out = []
    for record in read_topic({"bootstrap_servers": bootstrap}, topic):
        s = decode(record.value)
        value = (
            s["count"], s["weighted_count"], s["fatalities"], s["distinct_sources"],
            tuple(s["evidence_ids"]), tuple(s["risk_factors"]),
        )  # fmt: skip
        out.append((s["id"], (s["pane"], s["pane_index"]), value))
    return out


def by_window(found: list[tuple]) -> dict[str, list[tuple[tuple[str, int], tuple]]]:
    windows: dict[str, list] = {}
    for signal_id, pane, value in found:
        windows.setdefault(signal_id, []).append((pane, value))
    return windows


def final(found: list[tuple[tuple[str, int], tuple]]) -> tuple[str, int]:
    """A window's final pane: the one with the highest pane index, as the alert job takes it (the
    panes of one window can reach the topic out of order: the uninterrupted run counts them)."""
    return max((pane for pane, _ in found), key=lambda pane: pane[1])


def letters(bootstrap: str, topic: str) -> set[tuple]:
    """The dead letters, by the input record they stand for: (stage, reason, topic, partition, offset)."""
    out = set()
    for record in read_topic({"bootstrap_servers": bootstrap}, topic):
        d = decode(record.value)
        out.add((d["stage"], d["reason"], d["source"], d["partition"], d["offset"]))
    return out


def test_ten_kills_of_the_indicator_job_change_no_signal(bootstrap, make_topic, start_pipeline):
    started = time.monotonic()
    records = incident_records()
    calm_raw = make_topic("incidents-calm", 3)
    Feed(bootstrap, calm_raw, records).run()  # all at once: the uninterrupted run reads a backlog

    calm_signals, calm_dlq = make_topic("signals-calm", 3), make_topic("dlq-calm")
    calm = start_pipeline(*indicator_job(bootstrap, calm_raw, calm_signals, calm_dlq, "calm"))
    calm_output = Output(bootstrap, calm_signals)
    t0 = time.monotonic()
    settled(calm_output, calm, 20, 400, "the uninterrupted signals")
    span_s = time.monotonic() - t0 - 20  # from start to the last output: one whole run, on this machine
    calm.kill()
    calm_output.close()
    reference = by_window(panes(bootstrap, calm_signals))
    expected_letters = letters(bootstrap, calm_dlq)
    closing = sum(len(p) == 2 for p in reference.values())
    print(
        f"uninterrupted: {len(records)} records, {len(reference)} closed windows ({closing} with a closing "
        f"pane) in {span_s:.0f}s, {len(expected_letters)} dead letters"
    )
    # Per window one complete ON_TIME pane, and the closing pane repeats it.
    out_of_order = 0
    for signal_id, found in reference.items():
        assert sorted(pane for pane, _ in found) in ([ON_TIME], [LATE, ON_TIME]), (signal_id, found)
        assert len({value for _, value in found}) == 1, (signal_id, found)
        out_of_order += final(found) != found[-1][0]
    print(f"  of which {out_of_order} with the closing pane before the ON_TIME one on the topic")
    assert len(reference) > 3000
    expected = {i: (final(found), found[0][1]) for i, found in reference.items()}

    raw, signals, dlq = make_topic("incidents", 3), make_topic("signals-killed", 3), make_topic("dlq-killed")
    output = Output(bootstrap, signals)
    rng = random.Random(20261201)
    args = indicator_job(bootstrap, raw, signals, dlq, "killed")
    kills = []
    feed = Feed(bootstrap, raw, records, FEED_S)
    feed.start()
    for k in range(KILLS):
        before = output()
        if k % 2:  # at a random moment: start-up, reading, windows firing, writing, committing, idle
            kill_when(start_pipeline(*args), lambda: True, rng.uniform(1, 1.5 * span_s))
        else:  # while it writes: within a second of its first new output
            kill_when(start_pipeline(*args), lambda: output() > before, rng.uniform(0, 1))  # noqa: B023
        kills.append((output(), sum(o or 0 for o in committed(bootstrap, raw, "killed"))))
    before = output()  # what the killed runs wrote; the last run re-emits what its floor leaves open
    job = start_pipeline(*args)
    feed.done(FEED_S + 60)
    settled(lambda: output() - before, job, 20, 400, "the signals after the kills")
    output.close()
    found = panes(bootstrap, signals)
    got = by_window(found)
    got_letters = letters(bootstrap, dlq)
    print(
        f"{KILLS} kills (panes out, input offsets committed at each: {kills}); {len(found)} panes of "
        f"{len(got)} windows, {len(found) - sum(map(len, reference.values()))} more than uninterrupted; "
        f"{time.monotonic() - started:.0f}s"
    )
    lost, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
    changed = sorted(i for i, f in got.items() if i in expected and {v for _, v in f} != {expected[i][1]})
    last = sorted(i for i, f in got.items() if i in expected and final(f) != expected[i][0])
    assert (len(lost), len(extra), len(changed), len(last)) == (0, 0, 0, 0), (
        lost[:3],
        extra[:3],
        [(i, reference[i], got[i]) for i in changed[:2]],
        [(i, reference[i], got[i]) for i in last[:2]],
    )
    assert got_letters == expected_letters, sorted(got_letters ^ expected_letters)[:5]
    assert any(offsets for _, offsets in kills), "no kill came after a commit: no restart resumed from one"


def copy_windows(bootstrap: str, source: str, target: str, until_ms: int) -> int:
    """Copy the panes of the windows ending by `until_ms`, partition by partition, in their order."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    copied = 0
    try:
        for record in read_topic({"bootstrap_servers": bootstrap}, source):
            if int(record.key.decode().rsplit("-", 1)[1]) <= until_ms:
                producer.produce(target, record.value, key=record.key, partition=record.partition)
                copied += 1
        assert producer.flush(30) == 0
    finally:
        producer.close()
    return copied


def test_a_restart_after_partitions_committed_different_floors_changes_no_signal(
    bootstrap, make_topic, start_pipeline
):
    """The crash the kills above can land on, but seldom in a way that shows: a timer of the committer
    commits only the partitions with a progress marker ready, so one partition can keep an older floor
    R (emit_after) while the others moved on to R' > R, and a kill then leaves them so. Here that state
    is written as the committer writes it: partition 0 at the first offset of an event in a window ending
    after R, partitions 1 and 2 at the same for R', each with the watermark its offset was read at (its
    latest event before it less the out-of-orderness); and the signals topic holds what the run wrote
    before the crash: every pane of the windows ending by R'. A restart must resume above every
    partition's floor: the records below partitions 1 and 2's offsets lie in windows ending by R', which
    it cannot rebuild whole. (Resuming at the smallest floor, it re-emitted the windows ending in
    (R, R'] without them: undercounted.)"""
    records = incident_records()
    raw = make_topic("incidents", 3)
    Feed(bootstrap, raw, records).run()
    calm_signals, dlq = make_topic("signals-calm", 3), make_topic("dlq")
    calm = start_pipeline(*indicator_job(bootstrap, raw, calm_signals, dlq, "calm"))
    calm_output = Output(bootstrap, calm_signals)
    settled(calm_output, calm, 20, 400, "the uninterrupted signals")
    calm.kill()
    calm_output.close()
    reference = by_window(panes(bootstrap, calm_signals))
    expected = {i: (final(found), found[0][1]) for i, found in reference.items()}

    day, size = 86_400_000, 7 * 86_400_000
    times = [decode(value)["event_time"] for _, value in records]
    start = int(DAY0.timestamp() * 1000)
    floors = {0: start + 60 * day, 1: start + 62 * day, 2: start + 62 * day}
    offsets = {}
    for partition, floor in floors.items():
        mine = [int(t.timestamp() * 1000) for t in times[partition::3]]
        first = next(n for n, t in enumerate(mine) if t >= floor + day - size)  # choose_commits' limit
        wm = max(mine[:first]) - 7 * day  # --max-out-of-orderness 7d
        offsets[TopicPartition(raw, partition)] = OffsetAndMetadata(
            first, json.dumps({"wm": wm, "emit_after": floor}), -1
        )
    committer = KafkaConsumer(bootstrap_servers=bootstrap, group_id="crashed", enable_auto_commit=False)
    committer.commit(offsets)
    committer.close()
    signals = make_topic("signals-crashed", 3)
    durable = copy_windows(bootstrap, calm_signals, signals, max(floors.values()))

    output = Output(bootstrap, signals)
    job = start_pipeline(*indicator_job(bootstrap, raw, signals, dlq, "crashed"))
    settled(lambda: output() - durable, job, 20, 400, "the signals after the restart")
    output.close()
    got = by_window(panes(bootstrap, signals))
    print(
        f"restart at offsets {[o.offset for o in offsets.values()]} with floors "
        f"{[(f - start) // day for f in floors.values()]} (days): {durable} panes before, "
        f"{sum(map(len, got.values())) - durable} after"
    )
    changed = sorted(i for i, f in got.items() if i in expected and {v for _, v in f} != {expected[i][1]})
    assert (sorted(set(expected) ^ set(got))[:3], changed[:3]) == ([], []), [
        (i, reference[i], got[i]) for i in changed[:2]
    ]
    assert all(final(f) == expected[i][0] for i, f in got.items())


# ---------------------------------------------------------------------------------------------- connector


def connector(bootstrap: str, topic: str, dlq: str, state: str) -> list[str]:
    return [
        "-m", "tocsin.cli", "connect", "gdelt", "--dir", str(GDELT), "-b", bootstrap, "--topic", topic,
        "--dead-letter-topic", dlq, "--state-topic", state, "--batch-size", "50",
    ]  # fmt: skip


def record_ids(bootstrap: str, topic: str) -> list[str]:
    return [decode(r.value)["id"] for r in read_topic({"bootstrap_servers": bootstrap}, topic)]


def finished(job, timeout: float = 300) -> None:
    assert job.proc.wait(timeout=timeout) == 0, job.log_tail()


def test_ten_kills_of_a_connector_lose_and_repeat_no_record(bootstrap, make_topic, start_pipeline):
    started = time.monotonic()
    calm_topic = make_topic("incidents-calm", 3)
    calm = start_pipeline(*connector(bootstrap, calm_topic, make_topic("dlq-calm"), make_topic("state-calm")))
    t0 = time.monotonic()
    finished(calm)
    span_s = time.monotonic() - t0
    expected = record_ids(bootstrap, calm_topic)
    calm_output = Output(bootstrap, calm_topic)
    calm_end = calm_output()  # its records and transaction markers
    calm_output.close()
    print(f"uninterrupted: {len(expected)} records in {span_s:.0f}s")
    assert len(expected) == len(set(expected)) == 9354

    topic, dlq, state = (
        make_topic("incidents-killed", 3),
        make_topic("dlq-killed"),
        make_topic("state-killed"),
    )
    output = Output(bootstrap, topic)
    args = connector(bootstrap, topic, dlq, state)
    rng = random.Random(20261202)
    kills = []
    for k in range(KILLS):
        if k % 2:  # at a random moment of its first seconds: start-up, the cursor, the first batches
            kill_when(start_pipeline(*args), lambda: True, rng.uniform(0.3, 4))
        else:  # while it writes, at a random point of the k/2-th stretch of the replay (its records
            # out, maybe not committed yet: a transaction takes about a tenth of a second)
            target = max(int(calm_end * (k // 2 + rng.random()) / -(-KILLS // 2)), output() + 1)
            kill_when(start_pipeline(*args), lambda: output() >= target, rng.uniform(0, 0.2))  # noqa: B023
        kills.append(len(record_ids(bootstrap, topic)))
    job = start_pipeline(*args)
    finished(job)
    output.close()
    got = record_ids(bootstrap, topic)
    written = len(read_uncommitted(bootstrap, topic))
    print(
        f"{KILLS} kills (records committed at each: {kills}); {len(got)} records read_committed, "
        f"{len(set(got))} distinct, {len(expected)} expected; {written - len(got)} more on the topic in "
        f"aborted transactions (read_uncommitted: {written}); {time.monotonic() - started:.0f}s"
    )
    repeated = [i for i, n in Counter(got).items() if n > 1]
    assert repeated == [], f"{len(repeated)} records twice, e.g. {repeated[:3]}"
    assert set(got) == set(expected), (
        sorted(set(expected) - set(got))[:3],
        sorted(set(got) - set(expected))[:3],
    )
    assert read_topic({"bootstrap_servers": bootstrap}, dlq) == []
    assert any(0 < n < len(expected) for n in kills), "no kill landed mid-replay"
