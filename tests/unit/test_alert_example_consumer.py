"""The README's example consumer decodes tocsin's alerts with fastavro and the published schemas alone:
any writer version it was given (checked by fingerprint), a newer version it reads as its own, and a
record it cannot resolve skipped with the reason, not a crash. Registry ids: test_schema_registry.py."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import parse_rules
from tocsin.pipelines.rules.lifecycle import Track, observe
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.avro import Schema, SchemaRegistry, decode, default_registry, encode

ROOT = Path(__file__).parents[2]


def example():
    spec = importlib.util.spec_from_file_location("alert_consumer", ROOT / "examples" / "alert_consumer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def an_alert() -> dict:
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
    return alert


def test_the_example_decodes_an_alert_as_tocsin_wrote_it():
    message = encode(default_registry().get("Alert"), an_alert())
    consumer = example()
    reader = consumer.load_reader(str(SCHEMA_DIR / "alert.avsc"))
    writers = consumer.WriterSchemas([SCHEMA_DIR, SCHEMA_DIR / "previous"])
    assert consumer.decode_alert(message, writers, reader) == decode(message)
    assert decode(message)["evidence"][0]["url"] == "https://x.org/1"


def newer_alert_schema() -> Schema:
    raw = json.loads((SCHEMA_DIR / "alert.avsc").read_text())
    raw["fields"].append({"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."})
    return Schema.from_json(raw)


def test_a_new_schema_version_reads_as_the_reader_schema_once_its_file_is_given(tmp_path):
    newer = newer_alert_schema()
    registry = SchemaRegistry()
    registry.add(newer)
    message = encode(newer, an_alert() | {"note": "new"})
    consumer = example()
    reader = consumer.load_reader(str(SCHEMA_DIR / "alert.avsc"))

    # Not given the new version: the record is reported, by its fingerprint, and the consumer goes on.
    without = consumer.WriterSchemas([SCHEMA_DIR])
    with pytest.raises(consumer.UnknownWriter) as caught:
        consumer.decode_alert(message, without, reader)
    assert (
        str(caught.value)
        == f"writer schema fingerprint {newer.fingerprint:016x} is in none of the --schemas folders"
    )

    # Given it (tocsin schemas export of the newer release): read as this service's version.
    (tmp_path / "alert.v2.avsc").write_text(json.dumps(newer.parsed))
    decoded = consumer.decode_alert(message, consumer.WriterSchemas([SCHEMA_DIR, tmp_path]), reader)
    assert "note" not in decoded
    assert decoded == decode(encode(default_registry().get("Alert"), an_alert()))


def test_a_forged_fingerprint_or_framing_is_refused_not_guessed():
    consumer = example()
    reader = consumer.load_reader(str(SCHEMA_DIR / "alert.avsc"))
    writers = consumer.WriterSchemas([SCHEMA_DIR])
    message = bytearray(encode(default_registry().get("Alert"), an_alert()))
    message[2] ^= 0xFF  # the body alone would still read: the header must match a known schema
    with pytest.raises(consumer.UnknownWriter, match="^writer schema fingerprint [0-9a-f]{16} is in none"):
        consumer.decode_alert(bytes(message), writers, reader)
    with pytest.raises(consumer.UnknownWriter) as caught:
        consumer.decode_alert(b"\x00\x00\x00\x00\x07\x02", writers, reader)
    assert str(caught.value) == "registry-framed record (schema id 7) and no --schema-registry-url"
    with pytest.raises(consumer.UnknownWriter) as caught:
        consumer.decode_alert(b'{"json": 1}', writers, reader)
    assert str(caught.value) == "unknown framing (first byte 7b)"
