"""A back-test and the streaming jobs raise the same alerts on the same input.

The committed UCDP GED and GDELT excerpts go (a) through `tocsin backtest` and (b) through the
connectors onto the real broker, then the streaming indicator job and the streaming alert job on Prism,
with the same rules. Every alert the streaming jobs raise is one the back-test raised, with the same id
and the same events (FIRING, UPDATED, RESOLVED with their severities) in the same order; and each alert
of the back-test first raised by a window the stream can close is raised by the stream. (The stream's
watermark stops near its last record, so its last windows may still be open: per alert, what it emitted
is a prefix of the back-test's events.)
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
STREAM = ("--max-out-of-orderness", "1500000000", "--close-when-idle", "--idle-timeout", "2")


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
    first_end = {a["id"]: a["window_end"] for a in raised if a["sequence"] == 1}
    assert {a.split(":")[0] for a in expected} >= {"armed-conflict-deaths", "conflict-coverage"}

    connect(bootstrap, topics, "ucdp", str(UCDP))
    connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    client = {"bootstrap_servers": bootstrap}
    last_event = max(decode(r.value)["event_time"] for r in read_topic(client, topics["raw"]))
    last_event = last_event if isinstance(last_event, int) else int(last_event.timestamp() * 1000)
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
    # The stream's watermark stops near its last record (then creeps on at wall-clock speed): an alert
    # first raised by a window ending after the last record is not yet decided there.
    reachable = {k for k, v in expected.items() if first_end[k] <= last_event}

    def emitted():
        assert alerts_job.alive(), alerts_job.log_tail()
        return events_by_alert(decode(r.value) for r in read_topic(client, topics["alerts"]))

    streamed = settle(emitted, alerts_job, quiet_s=20, timeout=300, done=lambda got: set(got) >= reachable)
    missing = sorted(reachable - set(streamed))
    assert missing[:5] == [], (
        f"{len(missing)} of {len(reachable)} alerts not streamed: {alerts_job.log_tail()}"
    )
    assert sorted(set(streamed) - set(expected))[:5] == []
    for alert_id, events in streamed.items():
        assert events == expected[alert_id][: len(events)], alert_id
    complete = sum(1 for k, v in streamed.items() if v == expected[k])
    assert len(reachable) > 20 and complete >= len(reachable) - 2, (complete, len(reachable))


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
