"""`tocsin alerts tail`: the example subscriber prints alerts from the topic with the reasons they fired."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import parse_rules
from tocsin.pipelines.rules.lifecycle import Track, observe
from tocsin.serde.avro import default_registry, encode

pytestmark = pytest.mark.integration


def test_tail_prints_each_alert_event_with_its_values_and_evidence(bootstrap, make_topic):
    topic = make_topic("alerts", 3)
    ruleset = parse_rules(
        {
            "version": 1,
            "rules": [
                {
                    "id": "fights",
                    "description": "d",
                    "kind": "threshold",
                    "indicator": "rf1.armed_conflict",
                    "window": "1d",
                    "levels": {"watch": 3},
                }
            ],
        },
        load_catalogue(),
    )
    day = 86_400_000
    signal = {
        "indicator_id": "rf1.armed_conflict",
        "country": "SDN",
        "region": None,
        "window_start": 1_700_006_400_000 - day,
        "window_end": 1_700_006_400_000,
        "count": 4,
        "weighted_count": 2.0,
        "fatalities": 0,
        "distinct_sources": 3,
        "pane": "ON_TIME",
        "evidence": [
            {
                "observation_id": "o1",
                "source_id": "gdelt2:949480102",
                "title": None,
                "url": "https://example.org/a",
                "origin": "example.org",
                "event_time": 1_700_000_000_000,
            }
        ],
    }
    [alert] = observe(Track("fights", "SDN"), ruleset.rules[0], ruleset.risk_factors, signal)
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, key=alert["id"].encode(), value=encode(default_registry().get("Alert"), alert))
    producer.flush()

    result = CliRunner().invoke(
        app,
        [
            "alerts",
            "tail",
            "-b",
            bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--max",
            "1",
            "--idle-timeout",
            "30s",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["FIRING", "WATCH", "fights:SDN:2023-11-15T00:00Z", "(seq", "1)"]
    assert "    rf1.armed_conflict count: 4 >= 3" in lines
    assert "    evidence gdelt2:949480102:  https://example.org/a" in lines
    assert "1 alert events" in result.stderr.splitlines()  # with any kafka-python log lines
