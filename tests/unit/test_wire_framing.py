"""The two wire framings (single-object, registry), subject naming, and `tocsin schemas export/register`
errors: exact bytes and exact messages. The registry itself is tests/integration/test_schema_registry.py."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.unit.test_avro_serde import fixture
from tocsin.cli import app
from tocsin.config import SerializationSettings
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.avro import decode, default_registry, encode
from tocsin.serde.framing import (
    Frame,
    SerdeError,
    registry_header,
    single_object_header,
    unframe,
)
from tocsin.serde.subjects import registry_compatibility, value_subject


def test_the_headers_are_the_two_specifications_bytes():
    assert single_object_header(0x0102030405060708) == b"\xc3\x01\x08\x07\x06\x05\x04\x03\x02\x01"
    assert registry_header(258) == b"\x00\x00\x00\x01\x02"  # big-endian, Confluent's
    with pytest.raises(ValueError, match="^schema id 4294967296 does not fit"):
        registry_header(2**32)


def test_unframe_tells_the_framings_apart_by_the_first_byte():
    assert unframe(single_object_header(7) + b"body") == Frame("single-object", 7, 10)
    assert unframe(registry_header(42) + b"body") == Frame("registry", 42, 5)


@pytest.mark.parametrize(
    "message, error",
    [
        (b"\x01rest", "unknown magic byte 0x01: neither Avro single-object (C3 01) nor registry-framed (00)"),
        (b"", "empty message: neither Avro single-object (C3 01) nor registry-framed (00)"),
        (b"\x00\x00\x01", "registry-framed message of 3 bytes: shorter than its header"),
        (b"\xc3\x01\x00", "single-object message of 3 bytes: shorter than its header"),
    ],
)
def test_a_bad_header_is_one_exact_error(message, error):
    with pytest.raises(SerdeError) as caught:
        unframe(message)
    assert str(caught.value) == error


def test_subjects_follow_the_topic_name_strategy_and_tocsin_promises_full():
    assert value_subject("tocsin.alerts.v1") == "tocsin.alerts.v1-value"
    assert registry_compatibility() == "FULL"
    with pytest.raises(
        ValueError, match="^unknown compatibility mode 'none': use backward, forward or full$"
    ):
        registry_compatibility("none")


def test_single_object_stays_the_default():
    message = encode(default_registry().get("Response"), fixture("Response"))
    assert message[:2] == b"\xc3\x01"
    assert SerializationSettings().serialization == "single-object"


def test_a_registry_framed_record_without_a_registry_is_a_serde_error(monkeypatch):
    # A SerdeError, so a pipeline's source dead-letters it with this reason.
    monkeypatch.delenv("TOCSIN_SCHEMA_REGISTRY_URL", raising=False)
    from tocsin.serde import wire

    monkeypatch.setattr(wire, "_current", SerializationSettings())
    with pytest.raises(SerdeError) as caught:
        decode(registry_header(7) + b"\x02")
    assert str(caught.value) == (
        "registry-framed message (schema id 7) but no schema registry is configured "
        "(--schema-registry-url, TOCSIN_SCHEMA_REGISTRY_URL)"
    )


def test_registry_serialization_needs_a_url():
    result = CliRunner().invoke(app, ["--serialization", "registry", "schemas", "list"])
    assert result.exit_code == 1
    assert result.stderr == (
        "error: --serialization registry needs --schema-registry-url (TOCSIN_SCHEMA_REGISTRY_URL)\n"
    )


def test_schemas_export_writes_every_schema_as_avsc(tmp_path):
    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    shipped = sorted(p.name for p in SCHEMA_DIR.glob("*.avsc"))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.avsc")) == shipped
    for name in shipped:
        assert json.loads((tmp_path / "out" / name).read_text()) == json.loads(
            (SCHEMA_DIR / name).read_text()
        )


def test_schemas_export_into_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("")
    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path / "file")])
    assert result.exit_code == 1
    assert result.stderr == f"error: {tmp_path / 'file'}: File exists\n"


def test_schemas_register_against_an_unreachable_registry_is_one_line():
    from tocsin.kafka.local_broker import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["schemas", "register", "--schema-registry-url", url])
    assert result.exit_code == 1
    assert result.stderr == f"error: schema registry {url} is unreachable: [Errno 111] Connection refused\n"
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_schemas_register_without_a_url_is_one_line(monkeypatch):
    monkeypatch.delenv("TOCSIN_SCHEMA_REGISTRY_URL", raising=False)
    result = CliRunner().invoke(app, ["schemas", "register"])
    assert result.exit_code == 1
    assert (
        result.stderr
        == "error: schemas register needs --schema-registry-url (or TOCSIN_SCHEMA_REGISTRY_URL)\n"
    )


def test_a_registry_that_does_not_answer_is_not_the_records_fault(monkeypatch):
    # RegistryError, not a SerdeError: the source fails the bundle (retried) instead of dead-lettering a
    # good record (pipelines/io/source_read.py re-raises it).
    from tocsin.kafka.local_broker import free_port
    from tocsin.serde import wire
    from tocsin.serde.registry_client import RegistryError

    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setattr(wire, "_current", SerializationSettings(schema_registry_url=url))
    with pytest.raises(RegistryError) as caught:
        decode(registry_header(7) + b"\x02")
    assert not isinstance(caught.value, SerdeError)
    assert str(caught.value) == f"schema registry {url} is unreachable: [Errno 111] Connection refused"


def test_a_job_given_registry_framing_without_a_registry_is_one_line(monkeypatch, capsys):
    from tocsin.pipelines.options import job_options
    from tocsin.pipelines.rules.job import parser

    monkeypatch.delenv("TOCSIN_SCHEMA_REGISTRY_URL", raising=False)
    with pytest.raises(SystemExit) as caught:
        job_options(parser(), ["--serialization", "registry"])
    assert caught.value.code == 1
    assert capsys.readouterr().err == (
        "tocsin pipeline alerts: error: --serialization registry needs --schema-registry-url "
        "(TOCSIN_SCHEMA_REGISTRY_URL)\n"
    )
