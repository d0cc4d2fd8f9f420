"""The reference pipeline on the real broker and Beam's Flink runner (embedded Flink 1.19, no docker).

Shows the same as the Prism test: event-time windows fire while the input is still open, with the
exact count per key and window. The job server is the thin jar `make flink` builds
(deploy/flink/build_job_server.sh); without it the test is skipped.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaProducer

from tests.conftest import ROOT, wait_for
from tests.integration.test_window_count_streaming import OutputReader, pipeline_args, window_start

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.flink]

WINDOW_MS = 10_000
KEYS = ("k0", "k1", "k2")


def job_server_jar() -> Path:
    return Path(
        os.environ.get("TOCSIN_FLINK_JOB_SERVER_JAR")
        or ROOT / ".cache" / "flink" / "beam-flink-job-server.jar"
    ).resolve()


def flink_args() -> list[str]:
    jar = job_server_jar()
    if not jar.exists():
        if os.environ.get("TOCSIN_REQUIRE_FLINK"):  # make test builds it: missing is a failure there
            pytest.fail(f"Flink job server jar not found at {jar}")
        pytest.skip(f"Flink job server jar not found at {jar}: run `make flink` (needs Java 17 + Maven)")
    return [
        "--runner=FlinkRunner",
        "--flink_master=[local]",
        "--flink_version=1.19",
        f"--flink_job_server_jar={jar}",
        "--environment_type=LOOPBACK",
    ]


def test_windows_are_counted_on_flink_while_input_is_open(bootstrap, make_topic, start_pipeline):
    runner_flags = flink_args()
    tin, tout, dlq = make_topic("in", 2), make_topic("out"), make_topic("dlq")
    base = window_start(int(time.time() * 1000)) - 50 * WINDOW_MS
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    produced: Counter = Counter()  # "<key>@<window start>" -> records produced
    stop = threading.Event()

    def send(i: int) -> None:
        ts = base + i * 50  # 20 events per event-time second, alternating partitions, in event-time order
        key = KEYS[i % 3] if i % 7 else KEYS[0]  # uneven counts per key
        producer.send(tin, key=key.encode(), value=b"e", partition=i % 2, timestamp_ms=ts)
        produced[f"{key}@{window_start(ts)}"] += 1

    # Three full windows before the job starts...
    first_three = 3 * WINDOW_MS // 50
    for i in range(first_three):
        send(i)
    producer.flush()

    def keep_producing():
        # ...then the input stays open: ~5 s of event time per wall second moves the watermark on.
        i = first_three
        while not stop.is_set():
            for _ in range(20):
                send(i)
                i += 1
            producer.flush()
            time.sleep(0.2)

    reader = OutputReader(bootstrap, tout)
    pipeline = start_pipeline(
        *pipeline_args(bootstrap, tin, tout, dlq, f"g-{tin}", idle_timeout=600), *runner_flags
    )
    writer = threading.Thread(target=keep_producing, daemon=True)
    writer.start()
    expected = [f"{k}@{base + w * WINDOW_MS}" for w in range(3) for k in KEYS]
    try:
        # Flink's job server and the job itself take ~10-20 s to start.
        wait_for(
            lambda: all(k in reader.latest for k in expected) or not pipeline.alive(),
            240,
            interval=0.5,
            message=f"windows {expected}",
        )
        assert pipeline.alive(), pipeline.log_tail()
        assert writer.is_alive(), "the input must still be open when the windows arrive"
        for key in expected:
            value = reader.latest[key]
            assert value["count"] == produced[key], (key, value)
            assert value["window_end"] == value["window_start"] + WINDOW_MS
        # Every window emitted so far (including ones of the still-running input) is complete.
        emitted = dict(reader.latest)
        assert {k: v["count"] for k, v in emitted.items()} == {k: produced[k] for k in emitted}
        assert pipeline.alive(), pipeline.log_tail()
    finally:
        stop.set()
        writer.join(timeout=10)
        reader.close()
        producer.close()
