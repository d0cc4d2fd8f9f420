"""Benchmark: the indicator pipeline's path, Kafka -> decode -> normalise -> classify -> windows -> Kafka.

The raw topic is filled with real GDELT 2.0 events (the 32 export files in the shared data, parsed by the
GDELT connector) repeated under new ids with event times moved on by a day per copy, so the stream runs
in event-time order over many days. `tocsin pipeline indicators` (the default windows: 1 day every hour
and 7 days every day, per country and per region) reads it from the earliest offset on the local
streaming runner. Rates: events / (time the last observation was classified - time the first record was
read; records too late for the windows, GDELT's events dated months back, count as done), and the same
to the last signal pane written (the windows fire as the watermark passes). Peak RSS
is summed over the pipeline's processes (Python + Prism).

    python bench/indicator_pipeline_bench.py [--events 200000] [--bootstrap-servers host:port]

Writes bench/out/indicator_pipeline.json (--name to change). Arguments it does not know go to the
pipeline, e.g. `--no-regions --window 7d/1d`, or `--observations-topic T` to also publish observations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from rich.console import Console
from rich.progress import Progress

sys.path.insert(0, str(Path(__file__).resolve().parent))
from kafka_pipeline_bench import PipelineProcess, start_broker  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
DATA = Path(os.environ.get("TOCSIN_SHARED_DATA", ROOT.parent / "shared" / "data"))
DAY_MS = 86_400_000
console = Console(stderr=True)


def gdelt_reports() -> list[dict]:
    from tocsin.formats.gdelt import export_files, parse_text, read_export

    reports = []
    for path in export_files(DATA / "gdelt2" / "export_15min"):
        reports += [item for _, item in parse_text(read_export(path)) if isinstance(item, dict)]
    return sorted(reports, key=lambda r: r["event_time"])


def fill(bootstrap: str, topic: str, events: int, partitions: int) -> None:
    from tocsin.serde.avro import default_registry, encode

    schema = default_registry().get("IncidentReport")
    base = gdelt_reports()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1_048_576)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("producing", total=events)
        for i in range(events):
            copy, row = divmod(i, len(base))
            report = dict(base[row])
            report["id"] = f"{report['id']}-{copy}"
            report["source_record_id"] = f"{report['source_record_id']}-{copy}"
            report["event_time"] = report["event_time"] + copy * 3 * DAY_MS
            producer.send(topic, value=encode(schema, report, check=False), partition=i % partitions)
            if i % 10_000 == 0:
                progress.update(task, completed=i)
        producer.flush()
    producer.close()


def metric(port: int, name: str) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(name + "{"))


def run_pipeline(bootstrap: str, topics: dict, events: int, extra: list[str]) -> dict:
    from tocsin.kafka.local_broker import free_port

    port = free_port()
    pipeline = PipelineProcess(
        [
            "tocsin.pipelines.indicators.job",
            "--input-topic",
            topics["raw"],
            "--signals-topic",
            topics["signals"],
            "--dead-letter-topic",
            topics["dlq"],
            "--bootstrap-servers",
            bootstrap,
            "--start",
            "earliest",
            "--group-id",
            f"bench-{uuid.uuid4().hex[:6]}",
            "--metrics-port",
            str(port),
            "--max-out-of-orderness",
            "1d",
            "--early-after",
            "0",
            "--idle-timeout",
            "5s",
            "--close-when-idle",
            *extra,
        ],  # fmt: skip
        OUT / "indicator_pipeline.log",
    )
    first_read = classified_at = last_signal_at = None
    signals = 0.0
    deadline = time.monotonic() + 1800
    with pipeline, Progress(console=console, transient=True) as progress:
        task = progress.add_task("pipeline", total=events)
        while time.monotonic() < deadline and pipeline.running():
            time.sleep(0.5)
            now = time.perf_counter()
            consumed = metric(port, "tocsin_kafka_records_consumed_total")
            # Each record is classified, or too late (a dead letter) with the stragglers GDELT
            # dates months back.
            classified = metric(port, "tocsin_observations_total") + metric(
                port, "tocsin_source_late_records_total"
            )
            if first_read is None and consumed > 0:
                first_read = now
            if classified_at is None and classified >= events:
                classified_at = now
            current = metric(port, "tocsin_signals_total")
            if current > signals:
                signals, last_signal_at = current, now
            progress.update(task, completed=min(classified, events))
            pipeline.sample()
            # Done once everything is classified and no pane has come for 15 s.
            if classified_at is not None and last_signal_at is not None and now - last_signal_at > 15:
                break
    if classified_at is None or first_read is None:
        raise SystemExit(f"pipeline did not finish; see {OUT / 'indicator_pipeline.log'}")
    return {
        "classify_events_per_s": events / (classified_at - first_read),
        "to_last_signal_events_per_s": events / (last_signal_at - first_read),
        "seconds_to_last_signal": last_signal_at - first_read,
        "signal_panes": int(signals),
        **pipeline.peaks(),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--name", default="indicator_pipeline", help="Output: bench/out/NAME.json")
    args, extra = parser.parse_known_args()  # the rest goes to the pipeline (e.g. --window 7d/1d)
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker = None if args.bootstrap_servers else start_broker(Path(tmp))
        bootstrap = args.bootstrap_servers or broker.bootstrap_servers
        try:
            run = uuid.uuid4().hex[:6]
            topics = {k: f"bench.{k}.{run}.v1" for k in ("raw", "observations", "signals", "dlq")}
            admin = KafkaAdminClient(bootstrap_servers=bootstrap)
            admin.create_topics([NewTopic(t, args.partitions, 1) for t in topics.values()])
            admin.close()
            console.log(f"filling {topics['raw']} with {args.events} GDELT events")
            fill(bootstrap, topics["raw"], args.events, args.partitions)
            console.log("indicator pipeline on the local streaming runner")
            result = run_pipeline(bootstrap, topics, args.events, extra)
        finally:
            if broker:
                broker.stop()
    out = {
        "events": args.events,
        "partitions": args.partitions,
        "pipeline_args": extra,
        "classify_events_per_s": round(result["classify_events_per_s"]),
        "to_last_signal_events_per_s": round(result["to_last_signal_events_per_s"]),
        "seconds_to_last_signal": round(result["seconds_to_last_signal"], 1),
        "signal_panes": result["signal_panes"],
        "pipeline_peak_rss_mb": round(result["peak_rss_mb"]),
        "pipeline_peak_rss_mb_by_process": result["peak_rss_mb_by_process"],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runner": "PrismRunner",
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    console.print_json(json.dumps(out))


if __name__ == "__main__":
    main()
