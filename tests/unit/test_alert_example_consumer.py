"""The README's example consumer decodes tocsin's alerts with fastavro and the published schema alone."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import parse_rules
from tocsin.pipelines.rules.lifecycle import Track, observe
from tocsin.serde.avro import decode, default_registry, encode

ROOT = Path(__file__).parents[2]


def example():
    spec = importlib.util.spec_from_file_location("alert_consumer", ROOT / "examples" / "alert_consumer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_decodes_an_alert_as_tocsin_wrote_it():
    ruleset = parse_rules(
        {
            "version": 1,
            "rules": [
                {
                    "id": "r",
                    "description": "d",
                    "kind": "threshold",
                    "indicator": "rf1.armed_conflict",
                    "window": "1d",
                    "levels": {"watch": 1},
                }
            ],
        },
        load_catalogue(),
    )
    signal = {
        "indicator_id": "rf1.armed_conflict",
        "country": "SDN",
        "region": None,
        "window_start": 1_700_006_400_000 - 86_400_000,
        "window_end": 1_700_006_400_000,
        "count": 3,
        "weighted_count": 1.5,
        "fatalities": 0,
        "distinct_sources": 2,
        "pane": "ON_TIME",
        "evidence": [
            {
                "observation_id": "o",
                "source_id": "gdelt2:1",
                "title": "t",
                "url": "https://x.org/1",
                "origin": "x.org",
                "event_time": 1_700_000_000_000,
            }
        ],
    }
    [alert] = observe(Track("r", "SDN"), ruleset.rules[0], ruleset.risk_factors, signal)
    message = encode(default_registry().get("Alert"), alert)

    consumer = example()
    schema, wire = consumer.load_schema(str(ROOT / "schemas" / "alert.avsc"))
    assert consumer.decode_alert(message, schema, wire) == decode(message)
    assert decode(message)["evidence"][0]["url"] == "https://x.org/1"
