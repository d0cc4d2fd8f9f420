"""structlog JSON output with bound context, and the Prometheus endpoint."""

from __future__ import annotations

import json
import urllib.request

from tocsin.telemetry.logging import configure_logging, get_logger
from tocsin.telemetry.metrics import RECORDS_CONSUMED, counter, serve_metrics


def test_json_logs_carry_bound_context(capsys):
    configure_logging("json", "info")
    get_logger(stage="window-count").bind(topic="tocsin.alerts.v1", partition=2).info("committed", offset=41)
    get_logger(stage="x").debug("hidden")
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    configure_logging("console", "info")
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "committed" and line["level"] == "info"
    assert (line["stage"], line["topic"], line["partition"], line["offset"]) == (
        "window-count",
        "tocsin.alerts.v1",
        2,
        41,
    )
    assert line["timestamp"].endswith("Z")


def test_metrics_endpoint_serves_tocsin_series():
    RECORDS_CONSUMED.labels("tocsin.test.v1").inc(3)
    assert counter("tocsin_kafka_records_consumed_total", "again") is RECORDS_CONSUMED  # registered once
    port = serve_metrics(0)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'tocsin_kafka_records_consumed_total{topic="tocsin.test.v1"} 3.0' in body
    assert "tocsin_dead_letters_total" in body
