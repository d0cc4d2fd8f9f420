"""The reference job's windows equal the ground truth of its lateness policy, computed independently.

The policy (kafka_source.py): a record is late, and counted nowhere but the dead-letter topic, when its
event time is behind its partition's watermark at that record: the highest event time of the records
before it in the partition, minus the out-of-orderness. The input mixes in-order records, disorder
within the out-of-orderness (never late), records a little behind the watermark and records minutes
behind it; no record is placed to end the stream, so only `--close-when-idle` closes the last windows.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import wait_for
from tests.integration.test_window_count_streaming import OutputReader
from tocsin.pipelines.windowspec import WindowSpec

pytestmark = [pytest.mark.integration, pytest.mark.runner]

OOO_MS = 5_000
PARTITIONS = 3


def generate(seed: int, base: int, n: int) -> list[tuple[int, str, int]]:
    """(partition, key, event ms) in write order; 30 minutes of event time."""
    rng = random.Random(seed)
    out, clock = [], {p: base for p in range(PARTITIONS)}
    for i in range(n):
        p = i % PARTITIONS
        clock[p] += rng.randrange(0, 700)
        kind = rng.random()
        if kind < 0.03:
            ts = clock[p] - rng.randrange(90_000, 300_000)  # minutes late
        elif kind < 0.06:
            ts = clock[p] - rng.randrange(OOO_MS + 1, 30_000)  # a little behind the watermark
        else:
            ts = clock[p] - rng.randrange(0, OOO_MS)  # disorder the out-of-orderness absorbs
        out.append((p, f"k{rng.randrange(5)}", ts))
    return out


def truth(records, spec: WindowSpec) -> tuple[Counter, int]:
    """Windows ("key@start" -> count) and the number of late records, by the policy, per partition."""
    high: dict[int, int] = {}
    counts: Counter = Counter()
    late = 0
    size, period = spec.size_s * 1000, spec.period_s * 1000
    for p, key, ts in records:
        if p in high and ts < high[p] - OOO_MS:
            late += 1
            continue
        high[p] = max(high.get(p, ts), ts)
        last = ts - ts % period
        for start in range(last - size + period, last + 1, period):
            counts[f"{key}@{start}"] += 1
    return counts, late


@pytest.mark.parametrize(
    ("window", "event_time"),
    [("60s", "kafka-timestamp"), ("10m/1m", "json-field")],
    ids=["tumbling", "sliding"],
)
def test_every_window_equals_the_policy_truth(bootstrap, make_topic, start_pipeline, window, event_time):
    spec = WindowSpec.parse(window)
    tin, tout, dlq = make_topic("in", PARTITIONS), make_topic("out"), make_topic("dlq")
    base = (int(time.time() * 1000) // 3_600_000 - 48) * 3_600_000
    records = generate(11, base, 6_000)
    expected, late = truth(records, spec)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    for p, key, ts in records:
        value = json.dumps({"key": key, "ts": ts}).encode()
        # With the event time in the payload, the Kafka timestamps (now) say nothing of it.
        stamp = ts if event_time == "kafka-timestamp" else None
        producer.send(tin, key=key.encode(), value=value, partition=p, timestamp_ms=stamp)
    producer.flush()
    producer.close()

    reader = OutputReader(bootstrap, tout)
    args = ["-m", "tocsin.pipelines.window_count", "--input-topic", tin, "--output-topic", tout]
    args += ["--window", window, "--bootstrap-servers", bootstrap, "--group-id", f"g-{tin}"]
    args += ["--dead-letter-topic", dlq, "--max-out-of-orderness", "5s", "--idle-timeout", "2s"]
    args += ["--close-when-idle", "--start", "earliest"]
    if event_time == "json-field":
        args += ["--value-format", "json", "--event-time-field", "ts"]
    pipeline = start_pipeline(*args)
    try:

        def settled():
            return not pipeline.alive() or ({k: v["count"] for k, v in reader.latest.items()} == expected)

        try:
            wait_for(settled, 180, message="every window with its policy count")
        except AssertionError:
            pass  # the comparison below says which windows differ
        assert pipeline.alive(), pipeline.log_tail()
        got = {k: v["count"] for k, v in reader.latest.items()}
        missing = {k: n for k, n in expected.items() if got.get(k) != n}
        extra = {k: n for k, n in got.items() if k not in expected}
        assert not missing and not extra, (len(missing), list(missing.items())[:5], list(extra.items())[:5])
        assert reader.records == len(expected)  # each window once: no early or repeated panes

        dead = KafkaConsumer(
            dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=5_000
        )
        letters = sum(1 for _ in dead)
        dead.close()
        assert letters == late > 300
    finally:
        reader.close()
