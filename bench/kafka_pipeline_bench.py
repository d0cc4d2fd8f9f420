"""Benchmark: the read -> window -> count -> write pipeline against the raw kafka-python consume rate.

Both read the same pre-filled topic in the same run. The raw baseline consumes every record with
kafka-python and decodes its key (the work the pipeline does per record before counting); the
pipeline (tocsin.pipelines.window_count on the local streaming runner) reads from the earliest offset,
counts per key in 10-second event-time windows and writes each window's count to Kafka. Its rate is
records / (time the last window reached the output topic - time the first record was read), so the
runner's start-up is not counted. Peak RSS is the sum over the pipeline's processes (Python + Prism).

    python bench/kafka_pipeline_bench.py [--events 400000] [--bootstrap-servers host:port]

Writes bench/out/kafka_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from tocsin.processes import StageProcess

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
WINDOW_MS = 10_000
console = Console(stderr=True)


def start_broker(tmp: Path):
    from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port

    cache = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache")).resolve()
    broker = LocalBroker(
        libs_dir=cache / f"kafka-{KAFKA_VERSION}" / "libs",
        data_dir=tmp / "kafka",
        port=free_port(),
        controller_port=free_port(),
        heap="1g",
    )
    broker.start()
    return broker


def fill(bootstrap: str, topic: str, events: int, partitions: int, keys: int) -> dict[str, int]:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1_048_576)
    base = (int(time.time() * 1000) // WINDOW_MS - 10_000) * WINDOW_MS
    expected: dict[str, int] = {}
    step = max(1, (100 * WINDOW_MS) // events)  # spread over ~100 windows
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("producing", total=events)
        for i in range(events):
            key = f"k{i % keys}"
            ts = base + i * step
            producer.send(topic, key=key.encode(), value=b"x" * 64, partition=i % partitions, timestamp_ms=ts)
            expected[f"{key}@{ts - ts % WINDOW_MS}"] = expected.get(f"{key}@{ts - ts % WINDOW_MS}", 0) + 1
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        producer.flush()
    # One record per partition far ahead in event time moves every partition's watermark past the
    # last real window, so it fires without waiting for the idle timeout.
    last = base + events * step
    for p in range(partitions):
        producer.send(topic, key=b"end", value=b"", partition=p, timestamp_ms=last + 100 * WINDOW_MS)
    producer.flush()
    producer.close()
    return expected


def raw_consume(bootstrap: str, topic: str, partitions: int, events: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=8_388_608,
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen = 0
    keys = 0
    start = time.perf_counter()
    while seen < events:
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            for record in records:
                keys += len(record.key.decode())
            seen += len(records)
    elapsed = time.perf_counter() - start
    consumer.close()
    return seen / elapsed


def consumed(port: int) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    total = 0.0
    for line in body.splitlines():
        if line.startswith("tocsin_kafka_records_consumed_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def peak_rss_mb(pgid: int) -> dict[str, float]:
    """Peak RSS (VmHWM) of each process of the pipeline's group, by command name, in MiB."""
    peaks: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            status = (entry / "status").read_text().splitlines()
            name = next(line.split()[1] for line in status if line.startswith("Name:"))
            hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
            peaks[name] = peaks.get(name, 0) + hwm / 1024
        except (OSError, ProcessLookupError, StopIteration):
            continue
    return peaks


def _merge(a: dict, b: dict) -> dict:
    return {k: max(a.get(k, 0), b.get(k, 0)) for k in a.keys() | b.keys()}


class PipelineProcess(StageProcess):
    """`python -m ARGS` as the tests and the demo run a stage; `sample()` records the group's peak RSS
    while it runs; leaving the `with` block samples once more and kills the group (Prism with it)."""

    def __init__(self, args: list[str], log: Path):
        super().__init__(["-m", *args], log, cwd=ROOT)
        self.rss: dict[str, float] = {}

    def running(self) -> bool:
        return self.alive()

    def sample(self) -> None:
        self.rss = _merge(self.rss, peak_rss_mb(self.pid))

    def peaks(self) -> dict:
        return {
            "peak_rss_mb": sum(self.rss.values()),
            "peak_rss_mb_by_process": {k: round(v) for k, v in self.rss.items()},
        }

    def __exit__(self, *exc) -> None:
        self.sample()
        self.kill()


def run_pipeline(bootstrap: str, topic: str, out_topic: str, expected: dict[str, int], events: int) -> dict:
    from tocsin.kafka.local_broker import free_port

    port = free_port()
    pipeline = PipelineProcess(
        [
            "tocsin.pipelines.window_count",
            "--input-topic",
            topic,
            "--output-topic",
            out_topic,
            "--window",
            "10s",
            "--bootstrap-servers",
            bootstrap,
            "--start",
            "earliest",
            "--group-id",
            f"bench-{uuid.uuid4().hex[:6]}",
            "--metrics-port",
            str(port),
            "--idle-timeout",
            "30s",
            "--dead-letter-topic",
            "bench.dlq.v1",
        ],
        OUT / "pipeline.log",
    )
    reader = KafkaConsumer(
        out_topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", consumer_timeout_ms=200
    )
    latest: dict[str, int] = {}
    first_read = None
    done_at = None
    deadline = time.monotonic() + 900
    try:
        with pipeline, Progress(console=console, transient=True) as progress:
            task = progress.add_task("pipeline", total=events)
            while time.monotonic() < deadline and pipeline.running():
                n = consumed(port)
                if first_read is None and n > 0:
                    first_read = time.perf_counter()
                progress.update(task, completed=min(n, events))
                for message in reader:
                    value = json.loads(message.value)
                    latest[message.key.decode()] = value["count"]
                pipeline.sample()
                if all(latest.get(k) == v for k, v in expected.items()):
                    done_at = time.perf_counter()
                    break
    finally:
        reader.close()
    if done_at is None or first_read is None:
        raise SystemExit(f"pipeline did not finish; see {OUT / 'pipeline.log'}")
    return {
        "events_per_s": events / (done_at - first_read),
        "seconds": done_at - first_read,
        "windows": len(expected),
        **pipeline.peaks(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=400_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--keys", type=int, default=20)
    parser.add_argument("--bootstrap-servers", default=None)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.bootstrap_servers else start_broker(Path(tmp))
        bootstrap = args.bootstrap_servers or broker.bootstrap_servers
        try:
            topic, out_topic = f"bench.in.{uuid.uuid4().hex[:6]}.v1", f"bench.out.{uuid.uuid4().hex[:6]}.v1"
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.create_topics(
                [
                    NewTopic(topic, args.partitions, 1),
                    NewTopic(out_topic, 1, 1),
                    NewTopic("bench.dlq.v1", 1, 1),
                ]
                if "bench.dlq.v1" not in admin.list_topics()
                else [NewTopic(topic, args.partitions, 1), NewTopic(out_topic, 1, 1)]
            )
            admin.close()
            console.log(f"filling {topic} with {args.events} events")
            expected = fill(bootstrap, topic, args.events, args.partitions, args.keys)
            console.log("raw kafka-python consume + key decode")
            raw = raw_consume(bootstrap, topic, args.partitions, args.events)
            console.log("pipeline on the local streaming runner")
            pipe = run_pipeline(bootstrap, topic, out_topic, expected, args.events)
        finally:
            if broker:
                broker.stop()
    result = {
        "events": args.events,
        "partitions": args.partitions,
        "keys": args.keys,
        "raw_consume_events_per_s": round(raw),
        "pipeline_events_per_s": round(pipe["events_per_s"]),
        "ratio": round(pipe["events_per_s"] / raw, 3),
        "pipeline_seconds": round(pipe["seconds"], 2),
        "windows_checked": pipe["windows"],
        "pipeline_peak_rss_mb": round(pipe["peak_rss_mb"]),
        "pipeline_peak_rss_mb_by_process": pipe["peak_rss_mb_by_process"],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runner": "PrismRunner",
    }
    (OUT / "kafka_pipeline.json").write_text(json.dumps(result, indent=2) + "\n")
    table = Table(title="read -> window -> count -> write")
    for key in (
        "events",
        "raw_consume_events_per_s",
        "pipeline_events_per_s",
        "ratio",
        "pipeline_peak_rss_mb",
    ):
        table.add_row(key, str(result[key]))
    Console().print(table)


if __name__ == "__main__":
    main()
