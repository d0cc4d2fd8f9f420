"""The reference pipeline on the real broker and the local streaming runner (Prism).

Shows: windows fire while the input is still open; a killed and restarted pipeline counts every
event exactly once in its final results; late records reach the dead-letter topic with the reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from kafka import KafkaConsumer, KafkaProducer

from tests.conftest import wait_for
from tocsin.serde.avro import decode

pytestmark = [pytest.mark.integration, pytest.mark.runner]

WINDOW_MS = 10_000


def pipeline_args(bootstrap, tin, tout, dlq, group, idle_timeout=30):
    return [
        "-m",
        "tocsin.pipelines.window_count",
        "--input-topic",
        tin,
        "--output-topic",
        tout,
        "--window",
        "10s",
        "--bootstrap-servers",
        bootstrap,
        "--group-id",
        group,
        "--dead-letter-topic",
        dlq,
        "--idle-timeout",
        f"{idle_timeout}s",
        "--max-out-of-orderness",
        "1s",
    ]


class OutputReader:
    """Reads the count topic in the background; keeps the last value per key (the topic's semantics)."""

    def __init__(self, bootstrap, topic):
        self.latest: dict[str, dict] = {}
        self.arrivals: dict[str, float] = {}
        self.records = 0
        self._stop = threading.Event()
        self._consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=200
        )
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            for message in self._consumer:
                key = message.key.decode()
                self.latest[key] = json.loads(message.value)
                self.arrivals.setdefault(key, time.monotonic())
                self.records += 1

    def close(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self._consumer.close()


def window_start(ts_ms: int) -> int:
    return ts_ms - ts_ms % WINDOW_MS


def test_first_window_is_emitted_while_input_is_still_open(bootstrap, make_topic, start_pipeline):
    tin, tout, dlq = make_topic("in", 2), make_topic("out"), make_topic("dlq")
    base = window_start(int(time.time() * 1000)) - 20 * WINDOW_MS
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    produced: Counter = Counter()
    stop = threading.Event()

    def produce():
        # 10 events per event-time second on both partitions, in event-time order, until told to stop.
        i = 0
        while not stop.is_set():
            ts = base + i * 100
            key = f"k{i % 3}"
            producer.send(tin, key=key.encode(), value=b"e", partition=i % 2, timestamp_ms=ts)
            produced[(key, window_start(ts))] += 1
            i += 1
            if i % 20 == 0:
                producer.flush()
                time.sleep(0.05)

    reader = OutputReader(bootstrap, tout)
    pipeline = start_pipeline(*pipeline_args(bootstrap, tin, tout, dlq, f"g-{tin}", idle_timeout=600))
    writer = threading.Thread(target=produce, daemon=True)
    writer.start()
    try:
        first = f"k0@{base}"
        wait_for(lambda: first in reader.latest or not pipeline.alive(), 120, message="first window")
        assert pipeline.alive(), pipeline.log_tail()
        assert writer.is_alive(), "the input must still be open when the first window arrives"
        # The idle timeout is 10 minutes: only event-time progress of the open input fired the window.
        for k in ("k0", "k1", "k2"):
            key = f"{k}@{base}"
            wait_for(lambda key=key: key in reader.latest, 30, message=key)
            assert reader.latest[key]["count"] == produced[(k, base)]
            assert reader.latest[key]["window_end"] == base + WINDOW_MS

        # A record behind the watermark goes to the dead-letter topic with its reason.
        producer.send(tin, key=b"k0", value=b"late", partition=0, timestamp_ms=base + 1)
        producer.flush()
        dead = KafkaConsumer(
            dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=60_000
        )
        letter = decode(next(iter(dead)).value)
        dead.close()
        assert letter["reason"] == "late"
        assert letter["source"] == tin and letter["partition"] == 0
        assert letter["payload"] == b"late"
        assert letter["errors"] == [f"event time {base + 1} ms is behind the watermark"]
    finally:
        stop.set()
        writer.join(timeout=10)
        reader.close()
        producer.close()


def test_killed_pipeline_restarts_without_losing_or_double_counting(bootstrap, make_topic, start_pipeline):
    tin, tout, dlq = make_topic("in", 2), make_topic("out"), make_topic("dlq")
    group = f"g-{tin}"
    base = window_start(int(time.time() * 1000)) - 100 * WINDOW_MS
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    produced: Counter = Counter()

    def produce(first: int, last: int):
        for i in range(first, last):
            ts = base + i * 50  # 20 events per event-time second
            key = f"k{i % 4}"
            producer.send(tin, key=key.encode(), value=b"e", partition=i % 2, timestamp_ms=ts)
            produced[f"{key}@{window_start(ts)}"] += 1
        producer.flush()

    reader = OutputReader(bootstrap, tout)
    try:
        produce(0, 1500)  # 75 s of event time: windows 0..7
        first = start_pipeline(*pipeline_args(bootstrap, tin, tout, dlq, group, idle_timeout=3))
        wait_for(lambda: len(reader.latest) >= 8 or not first.alive(), 120, message="first windows")
        assert first.alive(), first.log_tail()
        produce(1500, 2000)  # more input arrives while the pipeline runs...
        time.sleep(1.0)
        first.kill()  # ...and it is killed mid-stream, like a crash
        produce(2000, 3000)  # input keeps arriving while it is down

        second = start_pipeline(*pipeline_args(bootstrap, tin, tout, dlq, group, idle_timeout=3))

        def complete():
            return all(reader.latest.get(k, {}).get("count") == n for k, n in produced.items()) or (
                not second.alive()
            )

        try:
            wait_for(complete, 120, message="every window with its full count")
        except AssertionError:
            pass  # the comparison below says which windows are wrong
        assert second.alive(), second.log_tail()
        counts = {k: v["count"] for k, v in reader.latest.items()}
        assert counts == dict(produced)
        assert sum(counts.values()) == 3000
    finally:
        reader.close()
        producer.close()


def test_event_time_from_the_avro_payload_and_undecodable_records_to_dead_letters(
    bootstrap, make_topic, start_pipeline
):
    import datetime as dt

    from tests.conftest import FIXTURES
    from tocsin.serde.avro import default_registry, encode

    tin, tout, dlq = make_topic("in", 1), make_topic("out"), make_topic("dlq")
    schema = default_registry().get("IncidentReport")
    base_record = json.loads((FIXTURES / "records" / "IncidentReport.json").read_text())
    base = window_start(int(time.time() * 1000)) - 50 * WINDOW_MS
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    # Event times in the payload span two windows; the Kafka timestamps (now) would put all in one.
    for i in range(30):
        record = base_record | {"id": f"ucdp-ged:{i}", "event_time": base + i * 500}
        producer.send(tin, key=b"SWZ", value=encode(schema, record))
    producer.send(tin, key=b"SWZ", value=b'{"not": "avro"}')
    producer.flush()
    reader = OutputReader(bootstrap, tout)
    pipeline = start_pipeline(
        *pipeline_args(bootstrap, tin, tout, dlq, f"g-{tin}", idle_timeout=2),
        "--value-schema",
        "IncidentReport",
        "--event-time-field",
        "event_time",
    )
    try:
        wait_for(lambda: len(reader.latest) >= 2 or not pipeline.alive(), 120, message="two windows")
        assert pipeline.alive(), pipeline.log_tail()
        assert {k: v["count"] for k, v in reader.latest.items()} == {
            f"SWZ@{base}": 20,
            f"SWZ@{base + WINDOW_MS}": 10,
        }
        dead = KafkaConsumer(
            dlq, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=30_000
        )
        letter = decode(next(iter(dead)).value)
        dead.close()
        assert (letter["reason"], letter["stage"], letter["offset"]) == (
            "decode-error",
            "pipeline.source",
            30,
        )
        assert letter["errors"] == [
            "SerdeError: unknown magic byte 0x7b: neither Avro single-object (C3 01) nor registry-framed (00)"
        ]
        assert letter["payload"] == b'{"not": "avro"}'
        assert dt.datetime.now(dt.UTC) - letter["at"] < dt.timedelta(minutes=5)
    finally:
        reader.close()
        producer.close()
