"""Avro single-object encoding on fastavro: round trips, evolution, and exact validation messages."""

from __future__ import annotations

import copy
import datetime as dt
import json
import struct

import pytest

from tests.conftest import FIXTURES
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.avro import (
    MAGIC,
    Schema,
    SchemaRegistry,
    SerdeError,
    decode,
    decode_plain,
    default_registry,
    encode,
    schema_fingerprint,
)
from tocsin.serde.validate import ValidationFailed

SCHEMA_NAMES = sorted(p.stem for p in (FIXTURES / "records").glob("*.json"))
BYTES_FIELDS = {"payload", "key"}


def fixture(name: str) -> dict:
    record = json.loads((FIXTURES / "records" / f"{name}.json").read_text())
    for field in BYTES_FIELDS & record.keys():
        if isinstance(record[field], str):
            record[field] = record[field].encode()
    return record


def as_millis(value):
    """fastavro returns timestamp-millis as aware datetimes; compare with the fixtures' epoch ms."""
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: as_millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_millis(v) for v in value]
    return value


def test_every_schema_has_a_fixture_and_every_field_a_doc():
    files = sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc"))
    names = sorted(default_registry().by_name)
    assert len(files) == 11 and SCHEMA_NAMES == names
    for path in SCHEMA_DIR.glob("*.avsc"):
        raw = json.loads(path.read_text())
        assert raw["namespace"] == "tocsin"
        undocumented = [f["name"] for f in raw["fields"] if not f.get("doc")]
        assert undocumented == [], f"{path.name}: fields without doc: {undocumented}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_round_trip(name):
    schema = default_registry().get(name)
    record = fixture(name)
    message = encode(schema, record)
    assert message[:2] == MAGIC
    assert struct.unpack_from("<Q", message, 2)[0] == schema.fingerprint
    assert as_millis(decode(message, schema)) == record


def test_fingerprint_is_crc64_avro_of_the_canonical_form():
    # The Avro specification's example: the fingerprint of "int" is 0x7275d51a3f395c8f.
    assert schema_fingerprint("int") == 0x7275D51A3F395C8F


def test_validation_reports_every_error_with_its_field():
    schema = default_registry().get("IncidentReport")
    record = fixture("IncidentReport")
    record["id"] = 14863
    record["source_type"] = "BLOG"
    del record["event_time"]
    record["latitude"] = "south"
    record["actors"][1]["role"] = None
    record["fatalities"]["best"] = 2**40
    record["attributes"]["where_prec"] = 1
    record["colour"] = "red"
    with pytest.raises(ValidationFailed) as caught:
        encode(schema, record)
    assert caught.value.errors == [
        "id: expected string, got int 14863",
        "source_type: 'BLOG' is not one of CONFLICT_DATA, EVENT_DATA, FIELD_MONITOR, CIVIL_SOCIETY, NEWS, "
        "UN_REPORT, OTHER",
        "event_time: required field missing",
        "latitude: expected double, got str 'south'",
        "actors[1].role: expected string, got NoneType None",
        "fatalities.best: 1099511627776 is out of range for int",
        "attributes['where_prec']: expected string, got int 1",
        "colour: unknown field",
    ]
    assert str(caught.value).startswith("tocsin.IncidentReport is invalid: id: expected string")


def test_naive_datetimes_are_rejected():
    schema = default_registry().get("Response")
    record = fixture("Response")
    record["at"] = dt.datetime(2026, 11, 24, 12, 0)
    with pytest.raises(ValidationFailed) as caught:
        encode(schema, record)
    assert caught.value.errors == ["at: datetime must be timezone-aware"]


def response_v1_and_v2() -> tuple[Schema, Schema]:
    """Response as shipped, and a v2 that adds a field with a default (a compatible change)."""
    raw = json.loads((SCHEMA_DIR / "response.avsc").read_text())
    new = copy.deepcopy(raw)
    new["fields"].append({"name": "channel", "type": "string", "default": "api", "doc": "How it arrived."})
    return Schema.from_json(raw), Schema.from_json(new)


def test_old_writer_new_reader_fills_defaults():
    old, new = response_v1_and_v2()
    registry = SchemaRegistry()
    registry.add(old, current=False)
    registry.add(new)
    decoded = decode(encode(old, fixture("Response")), new, registry)
    assert decoded["channel"] == "api"
    assert decoded["alert_id"] == "alert:civilian-killings|SWZ"


def test_new_writer_old_reader_ignores_added_fields():
    old, new = response_v1_and_v2()
    registry = SchemaRegistry()
    registry.add(old)
    registry.add(new, current=False)
    record = fixture("Response") | {"channel": "sms"}
    decoded = decode(encode(new, record), old, registry)
    assert "channel" not in decoded
    assert decoded["kind"] == "ACKNOWLEDGED"


def test_unknown_writer_and_bad_header_are_clear_errors():
    schema = default_registry().get("Response")
    message = encode(schema, fixture("Response"))
    with pytest.raises(SerdeError, match="^unknown writer schema fingerprint 0000000000000001$"):
        decode(MAGIC + struct.pack("<Q", 1) + message[10:])
    with pytest.raises(
        SerdeError,
        match=r"^unknown magic byte 0x7b: neither Avro single-object \(C3 01\) nor registry-framed \(00\)$",
    ):
        decode(b'{"json": true}')
    with pytest.raises(SerdeError, match="^cannot decode tocsin.Response body: "):
        decode(message[:14])


@pytest.mark.parametrize("read", [decode, decode_plain], ids=["decode", "decode_plain"])
def test_a_valid_record_followed_by_more_bytes_is_refused(read):
    message = encode(default_registry().get("Response"), fixture("Response"))
    assert read(message)  # the record alone reads
    with pytest.raises(SerdeError, match=r"^tocsin.Response body: 3 byte\(s\) after the record$"):
        read(message + b"\x00\x02x")
