"""A back-test and the streaming jobs raise the same alerts on the same input.

The committed UCDP GED and GDELT excerpts go (a) through `tocsin backtest` and (b) through the
connectors onto the real broker, then the streaming indicator job and the streaming alert job on Prism,
with the same rules. Every alert the streaming jobs raise is one the back-test raised, with the same id
and the same events (FIRING, UPDATED, RESOLVED with their severities) in the same order; and each alert
of the back-test is raised by the stream. (The stream's watermark stops near its last record, so its
last windows may still be open: per alert, what it emitted is a prefix of the back-test's events.)
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


def test_backtest_and_streaming_jobs_raise_the_same_alerts(bootstrap, make_topic, start_pipeline, tmp_path):
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
        expected = events_by_alert(json.loads(line) for line in lines)
    assert {a.split(":")[0] for a in expected} >= {"armed-conflict-deaths", "conflict-coverage"}

    topics = {
        "raw": make_topic("incidents", 3),
        "signals": make_topic("signals", 3),
        "alerts": make_topic("alerts", 3),
        "dlq": make_topic("dlq"),
        "connector_dlq": make_topic("connector-dlq"),
        "state": make_topic("state"),
    }
    connect(bootstrap, topics, "ucdp", str(UCDP))
    connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    common = ["--dead-letter-topic", topics["dlq"], "--bootstrap-servers", bootstrap, *STREAM]
    indicators = start_pipeline(
        "-m", "tocsin.pipelines.indicators.job", "--input-topic", topics["raw"],
        "--signals-topic", topics["signals"], "--group-id", "bt-indicators",
        "--window", "7d/1d", "--window", "1d/1h", "--no-regions", "--early-after", "0", *common,
    )  # fmt: skip
    alerts_job = start_pipeline(
        "-m", "tocsin.pipelines.rules.job", "--rules", str(rules), "--signals-topic", topics["signals"],
        "--alerts-topic", topics["alerts"], "--group-id", "bt-alerts", "--start", "committed", *common,
    )  # fmt: skip

    def emitted():
        for job in (indicators, alerts_job):
            assert job.alive(), job.log_tail()
        return events_by_alert(
            decode(r.value) for r in read_topic({"bootstrap_servers": bootstrap}, topics["alerts"])
        )

    deadline, streamed = time.monotonic() + 420, {}
    while time.monotonic() < deadline:
        streamed = emitted()
        complete = set(streamed) == set(expected) and all(
            len(streamed[k]) == len(v) or len(streamed[k]) >= len(v) - 1 for k, v in expected.items()
        )
        if complete:
            break
        time.sleep(5)
    assert sorted(set(expected) - set(streamed))[:5] == []
    assert sorted(set(streamed) - set(expected))[:5] == []
    for alert_id, events in streamed.items():
        assert events == expected[alert_id][: len(events)], alert_id
    assert len(expected) > 20
