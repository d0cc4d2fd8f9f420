"""Benchmark: alert latency, from the watermark passing a window's end to the alert on its topic.

The real alert job (`python -m tocsin.pipelines.rules.job`, Prism) reads a signals topic that this script
fills in real time, and writes alert events that this script reads back. The signals are synthetic but
schema-valid IndicatorSignal records (tocsin's Avro serde, with validation):

- the rule signals: one threshold rule on a short window spec (default `1m/10s`); at every window end E
  of the spec's period, as the wall clock passes E, every place (default 50 countries, dealt over the
  partitions) gets its ON_TIME pane of the window ending at E, its count cycling 1, 15, 25, 2 (phase
  shifted per place) so that FIRING (watch), UPDATED (warning) and RESOLVED alerts keep being raised;
- the clock records: every `--tick` seconds, one signal per partition of an indicator and a 1-tick window
  that no rule reads, its event time (window end) the wall clock when it is sent, so that every
  partition's watermark follows the wall clock. At a window end the rule signals are sent first, then the
  clock records, so that on every partition the record that lets the watermark pass E comes after E's
  signals.

Both topics keep the broker's append time (`message.timestamp.type=LogAppendTime`), and every time below
is one clock's (the broker's; the script reads it from the produce acknowledgements and the alert
records). For an alert decided at window end E (its `window_end`):

    latency = append time of the alert record on the alerts topic
              - append time of the first record with event time > E + out-of-orderness, on the partition
                that got such a record last

The second term is the earliest moment the source's watermark could pass E (its watermark is a
partition's highest event time minus the out-of-orderness, the slowest partition's; none goes idle here:
every partition gets a record each tick, within the idle timeout). It is a lower bound of when the job's
watermark passed E, so the latency is an upper bound of the job's own (watermark passed -> alert
appended): it includes the source noticing the record (its poll and read call), Prism moving the
watermark to the rule stage and firing its timers, the decisions, Avro encoding and the sink's flush
with acks=all. The alert job's /metrics (the source's watermark gauge, scraped every `--probe-every`)
splits it into record -> source watermark past E, and source watermark -> alert, each to the scrape
interval. Alerts of windows ending in the steady state (after the first alert and `--warmup`, for
`--duration`) are measured; they are checked against what the pure lifecycle decides over the same
signals (`dry_run`). A window whose records this script sent half the idle timeout late or more (it fell
behind the clock on a loaded machine) is left out and listed: the idle partitions' creep may have passed
it first. Percentiles are nearest-rank; the alerts of one window are decided together (one timer per
(rule, place), fired as the watermark passes E), so they are percentiles over few windows.

    python bench/alert_latency_bench.py [--duration 120] [--window 1m/10s] [--places 50]
        [--bootstrap host:port]

Writes bench/out/alert_latency.json and bench/out/alert_latency.md (--name to change), the job's log in
bench/out/alert_latency.log. Arguments it does not know go to the alert job.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "peers"))
from bench_broker import start_broker  # noqa: E402
from kafka_pipeline_bench import PipelineProcess  # noqa: E402

ROOT = HERE.parent
OUT = ROOT / "bench" / "out"
RULE_ID = "bench-latency"
RULE_INDICATOR = "rf1.armed_conflict"
CLOCK_INDICATOR = "volume.reports"  # no rule of the bench reads it
PHASES = (1, 15, 25, 2)  # counts per window: nothing, FIRING watch, UPDATED warning, RESOLVED
LEVELS = {"watch": 10, "warning": 20}
RESOLVE_BELOW = 5
MEASURE = (
    "per alert decided at window end E: its append time on the alerts topic minus the append time of "
    "the first signal with event time > E + out-of-orderness on the last partition to get one (broker "
    "LogAppendTime on both topics); nearest-rank percentiles"
)
console = Console(stderr=True)


def rules_document(window: str) -> dict:
    return {
        "version": 1,
        "rules": [
            {
                "id": RULE_ID,
                "description": "Benchmark rule: armed-conflict events in a short sliding window.",
                "kind": "threshold",
                "indicator": RULE_INDICATOR,
                "window": window,
                "levels": LEVELS,
                "resolve_below": RESOLVE_BELOW,
            }
        ],
    }


def places(n: int) -> list[str]:
    import pycountry

    codes = sorted(c.alpha_3 for c in pycountry.countries)
    if n > len(codes):
        raise SystemExit(f"--places: at most {len(codes)}")
    return codes[:n]


def indicator_signal(indicator: str, rfs: list[int], country: str, start_ms: int, end_ms: int, count: int):
    """An ON_TIME IndicatorSignal, as the indicator job writes one (transforms.signal)."""
    evidence = [
        {
            "observation_id": f"bench-obs:{country}",
            "source_id": f"bench:{country}",
            "title": None,
            "url": None,
            "origin": "bench",
            "event_time": end_ms - 1,
        }
    ]
    return {
        "id": f"{indicator}:{country}:{start_ms}-{end_ms}",
        "indicator_id": indicator,
        "risk_factors": rfs,
        "country": country,
        "region": None,
        "window_start": start_ms,
        "window_end": end_ms,
        "count": count,
        "weighted_count": float(count),
        "fatalities": 0,
        "distinct_sources": 2,
        "distinct_origins": 2,
        "reported_sources": 1,
        "pane": "ON_TIME",
        "pane_index": 0,
        "evidence_ids": [e["source_id"] for e in evidence],
        "evidence": evidence,
        "emitted_at": int(time.time() * 1000),
    }


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def summary(values: list[float]) -> dict | None:
    if not values:
        return None
    return {
        "count": len(values),
        "min": round(min(values)),
        "p50": round(nearest_rank(values, 0.50)),
        "p90": round(nearest_rank(values, 0.90)),
        "p99": round(nearest_rank(values, 0.99)),
        "max": round(max(values)),
        "mean": round(sum(values) / len(values)),
    }


class SignalWriter:
    """Sends the rule signals and clock records; keeps the append time of every clock record (per
    partition, in event-time order) and of each window's rule signals."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, names: list[str], spec, rfs: dict):
        from tocsin.serde.avro import default_registry

        self.schema = default_registry().get("IndicatorSignal")
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap, acks="all", linger_ms=0, enable_idempotence=True
        )
        self.topic = topic
        self.partitions = partitions
        self.names = names
        self.size_ms, self.period_ms = spec.size_s * 1000, spec.period_s * 1000
        self.rfs = rfs
        self.clock: dict[int, tuple[list[int], list[int]]] = {p: ([], []) for p in range(partitions)}
        self.rule_signals: list[dict] = []  # every rule signal sent, for the dry run
        self.signals_appended: dict[int, int] = {}  # E -> latest append time of its rule signals
        self.sent = 0
        self.last_end = 0

    def _send(self, signal: dict, partition: int):
        from tocsin.serde.avro import encode

        value = encode(self.schema, signal)  # validated: schema-valid records only
        self.sent += 1
        return self.producer.send(self.topic, key=signal["id"].encode(), value=value, partition=partition)

    def window(self, end_ms: int) -> None:
        index = end_ms // self.period_ms
        futures = []
        for i, country in enumerate(self.names):
            count = PHASES[(index + i) % len(PHASES)]
            signal = indicator_signal(
                RULE_INDICATOR, self.rfs[RULE_INDICATOR], country, end_ms - self.size_ms, end_ms, count
            )
            self.rule_signals.append(signal)
            futures.append(self._send(signal, i % self.partitions))
        self.last_end = end_ms
        self.producer.flush()
        self.signals_appended[end_ms] = max(f.get().timestamp for f in futures)

    def tick(self, tick_ms: int) -> None:
        event_ms = max(int(time.time() * 1000), self.last_end + 1)
        futures = []
        for p in range(self.partitions):
            name = self.names[p % len(self.names)]
            clock = indicator_signal(CLOCK_INDICATOR, [], name, event_ms - tick_ms, event_ms, 1)
            futures.append((p, self._send(clock, p)))
        self.producer.flush()
        for p, future in futures:
            events, appended = self.clock[p]
            events.append(event_ms)
            appended.append(future.get().timestamp)

    def passable_at(self, end_ms: int, ooo_ms: int) -> int | None:
        """Append time at which every partition had a record with event time > end + out-of-orderness
        (None: not yet)."""
        latest = 0
        for events, appended in self.clock.values():
            i = bisect.bisect_right(events, end_ms + ooo_ms)
            if i == len(events):
                return None
            latest = max(latest, appended[i])
        return latest

    def close(self) -> None:
        self.producer.close()


class AlertReader(threading.Thread):
    """Reads the alerts topic from its start: (append ms, timestamp type, receive ms, alert)."""

    def __init__(self, bootstrap: str, topic: str):
        super().__init__(daemon=True)
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.topic = topic
        self.alerts: list[tuple[int, int, int, dict]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from tocsin.serde.avro import decode_plain

        tps = [TopicPartition(self.topic, p) for p in sorted(self.consumer.partitions_for_topic(self.topic))]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        while not self.stopping.is_set():
            for records in self.consumer.poll(timeout_ms=100).values():
                received = int(time.time() * 1000)
                for record in records:
                    alert = decode_plain(record.value)[0]
                    self.alerts.append((record.timestamp, record.timestamp_type, received, alert))
        self.consumer.close()


class WatermarkProbe(threading.Thread):
    """Scrapes the job's source watermark gauge: [(scrape ms, slowest partition's watermark ms)]."""

    def __init__(self, port: int, topic: str, partitions: int, every_s: float):
        super().__init__(daemon=True)
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.topic, self.partitions, self.every_s = topic, partitions, every_s
        self.samples: list[tuple[int, int]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        wanted = f'topic="{self.topic}"'
        while not self.stopping.wait(self.every_s):
            try:
                body = urllib.request.urlopen(self.url, timeout=2).read().decode()
            except OSError:
                continue
            at = int(time.time() * 1000)
            marks = [
                float(line.rsplit(" ", 1)[1])
                for line in body.splitlines()
                if line.startswith("tocsin_source_watermark_seconds{") and wanted in line
            ]
            if len(marks) == self.partitions:
                self.samples.append((at, round(min(marks) * 1000)))

    def passed_at(self, end_ms: int) -> int | None:
        """First scrape at which the source's watermark was past end_ms."""
        return next((at for at, wm in self.samples if wm > end_ms), None)


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the processes of a process group so far (Python + Prism)."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ProcessLookupError, IndexError, ValueError):
            continue
    return total / os.sysconf("SC_CLK_TCK")


def create_topics(bootstrap: str, topics: dict[str, str], partitions: int) -> None:
    append_time = {"message.timestamp.type": "LogAppendTime"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(topics["signals"], partitions, 1, topic_configs=append_time),
                NewTopic(topics["alerts"], 1, 1, topic_configs=append_time),
                NewTopic(topics["dlq"], 1, 1),
            ]
        )
    finally:
        admin.close()


def job_args(args, bootstrap: str, topics: dict, rules: Path, port: int, extra: list[str]) -> list[str]:
    return [
        "tocsin.pipelines.rules.job",
        "--rules", str(rules),
        "--signals-topic", topics["signals"],
        "--alerts-topic", topics["alerts"],
        "--dead-letter-topic", topics["dlq"],
        "--bootstrap-servers", bootstrap,
        "--group-id", f"bench-alerts-{uuid.uuid4().hex[:6]}",
        "--start", "earliest",
        "--max-out-of-orderness", f"{args.max_out_of_orderness}s",
        "--idle-timeout", f"{args.idle_timeout}s",
        "--metrics-port", str(port),
        *extra,
    ]  # fmt: skip


def measure(args, bootstrap: str, extra: list[str], tmp: Path) -> dict:
    from tocsin.kafka.local_broker import free_port
    from tocsin.pipelines.indicators.catalogue import load_catalogue
    from tocsin.pipelines.rules.config import load_rules
    from tocsin.pipelines.rules.dryrun import dry_run
    from tocsin.pipelines.windowspec import WindowSpec

    spec = WindowSpec.parse(args.window)
    period_ms, tick_ms = spec.period_s * 1000, round(args.tick * 1000)
    if period_ms % tick_ms:
        raise SystemExit("--tick must divide the window's period")
    ooo_ms = args.max_out_of_orderness * 1000
    run = uuid.uuid4().hex[:6]
    topics = {k: f"bench.{k}.{run}.v1" for k in ("signals", "alerts", "dlq")}
    create_topics(bootstrap, topics, args.partitions)
    rules = tmp / "rules.yaml"
    rules.write_text(yaml.safe_dump(rules_document(args.window), sort_keys=False), encoding="utf-8")
    catalogue = load_catalogue()
    ruleset = load_rules(rules, catalogue)  # what the job loads: the file is valid before it starts
    rfs = {i.id: list(i.risk_factors) for i in catalogue.indicators}

    names = places(args.places)
    writer = SignalWriter(bootstrap, topics["signals"], args.partitions, names, spec, rfs)
    reader = AlertReader(bootstrap, topics["alerts"])
    reader.start()
    port = free_port()
    log = OUT / f"{args.name}.log"
    log.write_text("")
    job = PipelineProcess(job_args(args, bootstrap, topics, rules, port, extra), log)
    probe = WatermarkProbe(port, topics["signals"], args.partitions, args.probe_every)
    if args.probe_every > 0:
        probe.start()
    load_before = os.getloadavg()
    started = time.time()
    next_end = (int(started * 1000) // period_ms + 1) * period_ms
    next_tick = (int(started * 1000) // tick_ms + 1) * tick_ms
    measure_from = measure_to = stop_at = None
    cpu_from = cpu_to = None
    try:
        with (
            job,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as progress,
        ):
            task = progress.add_task("starting the alert job", total=None, info="")
            while True:
                time.sleep(max(0.0, next_tick / 1000 - time.time()))
                now_ms = int(time.time() * 1000)
                while next_end <= now_ms:  # a window's signals, before any record past its end
                    writer.window(next_end)
                    next_end += period_ms
                writer.tick(tick_ms)
                while next_tick <= now_ms:
                    next_tick += tick_ms
                job.sample()
                if not job.running():
                    raise SystemExit(f"the alert job ended:\n{job.log_tail()}")
                alerts = len(reader.alerts)
                if measure_from is None:
                    if alerts == 0:
                        if now_ms / 1000 - started > args.start_timeout:
                            raise SystemExit(f"no alert within {args.start_timeout}s:\n{job.log_tail()}")
                        progress.update(task, info=f"{writer.sent} signals sent")
                        continue
                    warm_until = now_ms + args.warmup * 1000
                    measure_from = (warm_until // period_ms + 1) * period_ms
                    measure_to = measure_from + args.duration * 1000
                    stop_at = measure_to + args.drain * 1000
                    progress.update(task, description="warm-up", total=measure_from - now_ms, completed=0)
                    warm_start = now_ms
                if now_ms < measure_from:
                    progress.update(task, completed=now_ms - warm_start, info=f"{alerts} alerts")
                    continue
                if cpu_from is None:
                    cpu_from = (group_cpu_s(job.pid), time.time())
                    progress.update(task, description="steady state", total=measure_to - measure_from)
                if now_ms < measure_to:
                    progress.update(
                        task,
                        completed=now_ms - measure_from,
                        info=f"{alerts} alerts, {writer.sent} signals",
                    )
                    continue
                if cpu_to is None:
                    cpu_to = (group_cpu_s(job.pid), time.time())
                    progress.update(task, description="last alerts", total=stop_at - measure_to)
                progress.update(task, completed=now_ms - measure_to, info=f"{alerts} alerts")
                if now_ms >= stop_at:
                    break
            job.sample()
    finally:
        reader.stopping.set()
        probe.stopping.set()
        writer.close()
        reader.join(timeout=5)
    load_after = os.getloadavg()

    # What the pure lifecycle decides over the same signals, for the windows measured.
    def measured(alert: dict) -> bool:
        return measure_from <= alert["window_end"] < measure_to

    expected = {(a["id"], a["sequence"]): a for a in dry_run(ruleset, writer.rule_signals) if measured(a)}
    got: dict[tuple, tuple] = {}
    for appended, ts_type, received, alert in reader.alerts:
        if measured(alert):
            got.setdefault((alert["id"], alert["sequence"]), (appended, ts_type, received, alert))
    latencies, receive, to_source, source_to_alert = [], [], [], []
    unknown_reference = 0
    per_window: dict[int, list[float]] = {}
    # A window whose signals this script sent late (it fell behind real time: a loaded machine) may
    # have been passed by the idle partitions' creep before its records came: not measured.
    behind = {
        e: ref - e
        for e in {a[3]["window_end"] for a in got.values()}
        if (ref := writer.passable_at(e, ooo_ms)) is not None and ref - e - ooo_ms >= args.idle_timeout * 500
    }
    for appended, ts_type, received, alert in got.values():
        if ts_type != 1:
            raise SystemExit("the alerts topic does not keep LogAppendTime")
        end = alert["window_end"]
        reference = writer.passable_at(end, ooo_ms)
        if reference is None:
            unknown_reference += 1
            continue
        if end in behind:
            continue
        latencies.append(appended - reference)
        receive.append(received - reference)
        per_window.setdefault(end, []).append(appended - reference)
        source = probe.passed_at(end) if args.probe_every > 0 else None
        if source is not None:
            to_source.append(source - reference)
            source_to_alert.append(appended - source)
    cpu_s = (cpu_to[0] - cpu_from[0]) if cpu_from and cpu_to else None
    wall_s = (cpu_to[1] - cpu_from[1]) if cpu_from and cpu_to else None
    windows = sorted(per_window)
    return {
        "measure": MEASURE,
        "topics_partitions": {"signals": args.partitions, "alerts": 1},
        "window": args.window,
        "places": args.places,
        "tick_s": args.tick,
        "max_out_of_orderness_s": args.max_out_of_orderness,
        "idle_timeout_s": args.idle_timeout,
        "job_args": extra,
        "warmup_s": args.warmup,
        "steady_state_s": args.duration,
        "windows_measured": len(windows),
        "alerts_measured": len(latencies),
        "alerts_expected": len(expected),
        "alerts_missing": len(set(expected) - set(got)),
        "alerts_unexpected": len(set(got) - set(expected)),
        "alerts_without_reference": unknown_reference,
        "windows_not_measured_producer_behind_ms": sorted(behind.values()),
        "alerts_per_s": round(len(latencies) / args.duration, 2),
        "signals_per_s": round(
            (args.places * 1000 / period_ms) + args.partitions / args.tick, 1
        ),  # rule signals + clock records
        "latency_ms": summary(latencies),
        "receive_latency_ms": summary(receive),
        "record_to_source_watermark_ms": summary(to_source),
        "source_watermark_to_alert_ms": summary(source_to_alert),
        "probe_every_s": args.probe_every,
        "window_signals_to_reference_ms": summary(
            [writer.passable_at(e, ooo_ms) - writer.signals_appended[e] for e in windows]
        ),
        "window_end_to_reference_ms": summary([writer.passable_at(e, ooo_ms) - e for e in windows]),
        "per_window_max_ms": [round(max(per_window[e])) for e in windows],
        "job_cpu_s": round(cpu_s, 1) if cpu_s is not None else None,
        "job_cpu_per_wall_s": round(cpu_s / wall_s, 2) if cpu_s is not None and wall_s else None,
        "job_peak_rss_mb": round(job.peaks()["peak_rss_mb"]),
        "load_average_1m": [round(load_before[0], 1), round(load_after[0], 1)],
    }


def markdown(out: dict) -> str:
    lat = out["latency_ms"] or {}
    percentiles = " / ".join(str(lat.get(k)) for k in ("p50", "p90", "p99", "max"))
    rows = [
        ("alerts measured", f"{out['alerts_measured']} ({out['alerts_per_s']}/s)"),
        ("latency p50 / p90 / p99 / max", f"{percentiles} ms"),
    ]
    for key, label in (
        ("record_to_source_watermark_ms", "record -> source watermark (p50 / p99)"),
        ("source_watermark_to_alert_ms", "source watermark -> alert (p50 / p99)"),
    ):
        part = out.get(key)
        if part:
            rows.append((label, f"{part['p50']} / {part['p99']} ms"))
    rows += [
        ("expected / missing / unexpected", " / ".join(
            str(out[k]) for k in ("alerts_expected", "alerts_missing", "alerts_unexpected")
        )),
        ("job CPU", f"{out['job_cpu_per_wall_s']} CPU-s per s, peak RSS {out['job_peak_rss_mb']} MiB"),
        ("load average (1 min, before / after)", " / ".join(str(x) for x in out["load_average_1m"])),
    ]  # fmt: skip
    lines = [
        "# Alert latency (bench/alert_latency_bench.py)",
        "",
        f"Window {out['window']}, {out['places']} places, {out['topics_partitions']['signals']} signal "
        f"partitions, a clock record per partition every {out['tick_s']} s, out-of-orderness "
        f"{out['max_out_of_orderness_s']} s, {out['steady_state_s']} s of steady state on "
        f"{out['cpus']} cores (shared: upper bounds). Latency: the alert's append time on its topic minus "
        "the append time of the first record past the window's end on the last partition to get one.",
        "",
        "| measure | value |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in rows),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default=None, help="A broker to use (default: start one)")
    parser.add_argument("--duration", type=int, default=120, help="Seconds of steady state measured")
    parser.add_argument("--warmup", type=int, default=30, help="Seconds after the first alert not measured")
    parser.add_argument("--drain", type=int, default=30, help="Seconds after the steady state for its alerts")
    parser.add_argument("--window", default="1m/10s", help="The rule's window spec")
    parser.add_argument("--places", type=int, default=50, help="Countries with a signal every window")
    parser.add_argument("--partitions", type=int, default=4, help="Partitions of the signals topic")
    parser.add_argument("--tick", type=float, default=0.5, help="Seconds between clock records")
    parser.add_argument("--max-out-of-orderness", type=int, default=0, help="Job option, seconds")
    parser.add_argument("--idle-timeout", type=int, default=2, help="Job option, seconds")
    parser.add_argument(
        "--probe-every", type=float, default=0.2, help="Seconds between /metrics scrapes (0: off)"
    )
    parser.add_argument("--start-timeout", type=int, default=300, help="Seconds to wait for the first alert")
    parser.add_argument("--name", default="alert_latency", help="Output: bench/out/NAME.json and .md")
    args, extra = parser.parse_known_args()  # the rest goes to the alert job
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        broker, kafka_version = (None, None) if args.bootstrap else start_broker(Path(tmp) / "kafka")
        bootstrap = args.bootstrap or broker.bootstrap_servers
        try:
            console.log(f"alert job on the local streaming runner, rule window {args.window}")
            result = measure(args, bootstrap, extra, Path(tmp))
        finally:
            if broker:
                broker.stop()
    out = {
        **result,
        "kafka": kafka_version,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "runner": "PrismRunner",
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    (OUT / f"{args.name}.md").write_text(markdown(out))
    lat = out["latency_ms"] or {}
    table = Table(title=f"alert latency, window {args.window} (ms)")
    for key in ("count", "p50", "p90", "p99", "max"):
        table.add_column(key, justify="right")
    table.add_row(*(str(lat.get(k)) for k in ("count", "p50", "p90", "p99", "max")))
    Console().print(table)
    console.print_json(json.dumps(out))


if __name__ == "__main__":
    main()
