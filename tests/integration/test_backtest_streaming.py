"""A back-test and the streaming jobs raise the same alerts on the same input.

The committed UCDP GED and GDELT excerpts go (a) through `tocsin backtest` and (b) through the
connectors onto the real broker, then the streaming indicator job and the streaming alert job on Prism,
with the same rules. Every alert the streaming jobs raise is one the back-test raised, with the same id
and the same events (FIRING, UPDATED, RESOLVED with their severities) in the same order; and every event
of the back-test for a window the stream can close is emitted by the stream. (The stream's watermark
stops near its last record, so its last windows may still be open: per alert, what it emitted is a
prefix of the back-test's events.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import defaultdict

import pytest
import yaml

from tests.conftest import FIXTURES, ROOT, connect
from tocsin.kafka.read import read_topic
from tocsin.pipelines.rules.config import packaged_rules_path
from tocsin.serde.avro import decode

pytestmark = [pytest.mark.integration, pytest.mark.runner]

UCDP = ROOT / "sample_data" / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv"
GDELT = ROOT / "sample_data" / "gdelt2"
EPISODES = FIXTURES / "episodes" / "onsets_2013_days.csv"
# One hour of GDELT reaches none of the packaged weekly rules: a rule it does reach, so that alerts
# from both sources are compared.
GDELT_RULE = {
    "id": "conflict-coverage",
    "description": "Test rule: many distinct armed-conflict events in a week.",
    "kind": "threshold",
    "indicator": "rf1.armed_conflict",
    "window": "7d/1d",
    "levels": {"watch": 10, "warning": 30},
    "min_sources": 3,
}
STREAM = ("--max-out-of-orderness", "1500000000s", "--close-when-idle", "--idle-timeout", "2s")
DAY_MS = 86_400_000


def _ms(value) -> int:
    return int(value.timestamp() * 1000)


def events_by_alert(alerts) -> dict[str, list[tuple]]:
    out = defaultdict(list)
    for a in sorted(alerts, key=lambda a: (a["id"], a["sequence"])):
        out[a["id"]].append((a["sequence"], a["status"], a["severity"]))
    return dict(out)


def test_backtest_and_streaming_jobs_raise_the_same_alerts(bootstrap, chain_topics, start_pipeline, tmp_path):
    topics = chain_topics
    rules = tmp_path / "rules.yaml"
    document = yaml.safe_load(packaged_rules_path().read_text(encoding="utf-8"))
    document["rules"].append(GDELT_RULE)
    rules.write_text(yaml.safe_dump(document), encoding="utf-8")

    report = tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "backtest", "--from-file", str(UCDP), "--from-file", str(GDELT),
         "--episodes", str(EPISODES), "--rules", str(rules), "--report", str(report), "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    with (report / "alerts.jsonl").open(encoding="utf-8") as lines:
        raised = [json.loads(line) for line in lines]
    expected = events_by_alert(raised)
    ends = {(a["id"], a["sequence"]): a["window_end"] for a in raised}
    assert {a.split(":")[0] for a in expected} >= {"armed-conflict-deaths", "conflict-coverage"}

    connect(bootstrap, topics, "ucdp", str(UCDP))
    connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    client = {"bootstrap_servers": bootstrap}
    latest = defaultdict(int)  # the latest event of each raw partition
    for record in read_topic(client, topics["raw"]):
        t = decode(record.value)["event_time"]
        latest[record.partition] = max(latest[record.partition], t if isinstance(t, int) else _ms(t))
    # The stream's watermarks stop at the earliest partition's latest event (then creep on at the wall
    # clock's pace): windows ending after it, less a day for the alert job's own margin, may stay open.
    closed_by = min(latest.values()) - DAY_MS
    common = ["--dead-letter-topic", topics["dlq"], "--bootstrap-servers", bootstrap, *STREAM]
    indicators = start_pipeline(
        "-m", "tocsin.pipelines.indicators.job", "--input-topic", topics["raw"],
        "--signals-topic", topics["signals"], "--group-id", "bt-indicators",
        "--window", "7d/1d", "--window", "1d/1h", "--no-regions", "--early-after", "0", *common,
    )  # fmt: skip
    # The alert job starts once the signals are in, as it would on a live topic: a partition that has
    # never had a record is idle at the wall clock, so signals of 1989 arriving later would all be late.
    settle(lambda: len(read_topic(client, topics["signals"])), indicators, quiet_s=15, timeout=300)
    alerts_job = start_pipeline(
        "-m", "tocsin.pipelines.rules.job", "--rules", str(rules), "--signals-topic", topics["signals"],
        "--alerts-topic", topics["alerts"], "--group-id", "bt-alerts", "--start", "committed", *common,
    )  # fmt: skip
    # What the stream must have decided: each alert's events of windows it can close.
    decidable = {k: [e for e in events if ends[(k, e[0])] <= closed_by] for k, events in expected.items()}
    decidable = {k: v for k, v in decidable.items() if v}

    def emitted():
        assert alerts_job.alive(), alerts_job.log_tail()
        return events_by_alert(decode(r.value) for r in read_topic(client, topics["alerts"]))

    def caught_up(got) -> bool:
        return all(got.get(k, [])[: len(v)] == v for k, v in decidable.items())

    streamed = settle(emitted, alerts_job, quiet_s=30, timeout=400, done=caught_up)
    late = sorted(k for k, v in decidable.items() if streamed.get(k, [])[: len(v)] != v)
    assert late[:5] == [], (
        f"{len(late)} of {len(decidable)} alerts not streamed whole: {alerts_job.log_tail()}"
    )
    assert sorted(set(streamed) - set(expected))[:5] == []
    for alert_id, events in streamed.items():  # nothing the back-test did not raise, in its order
        assert events == expected[alert_id][: len(events)], alert_id
    assert len(decidable) > 20


def settle(read, job, quiet_s: float, timeout: float, done=lambda value: False):
    """What `read` returns once it stopped changing for quiet_s (or `done` says it is complete)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        assert job.alive(), job.log_tail()
        value = read()
        if done(value):
            return value
        if value != last:
            last, since = value, time.monotonic()
        elif value and time.monotonic() - since >= quiet_s:
            return value
        time.sleep(3)
    raise AssertionError(f"nothing settled in {timeout:.0f}s: {job.log_tail()}")
