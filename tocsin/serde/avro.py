"""Avro encoding of tocsin records on the wire, with fastavro.

By default each message is `C3 01` + the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema's canonical form + the Avro binary body (the Avro specification's single-object encoding); with
`--serialization registry`, `00` + the 4-byte id a schema registry gave the writer schema + the body
(tocsin.serde.framing). A reader takes either: it looks a fingerprint up among the schemas it knows (the
current ones and every earlier version it was given), or fetches a registry id's schema once, then
resolves writer to reader schema, so producers and consumers upgrade independently.
"""

from __future__ import annotations

import functools
import io
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
from fastavro.schema import expand_schema, fingerprint, to_parsing_canonical_form

from tocsin.config import SerializationSettings
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde import wire
from tocsin.serde.framing import (
    SINGLE_OBJECT_HEADER,
    SINGLE_OBJECT_MAGIC,
    SerdeError,
    registry_header,
    unframe,
)
from tocsin.serde.registry_client import registry_client
from tocsin.serde.subjects import value_subject
from tocsin.serde.validate import ValidationFailed, validate

MAGIC = SINGLE_OBJECT_MAGIC
HEADER_SIZE = SINGLE_OBJECT_HEADER
# SerdeError lives with the framing now; re-exported, as every stage catches it from here.
__all__ = ["HEADER_SIZE", "MAGIC", "SerdeError", "decode", "decode_plain", "encode"]


def schema_fingerprint(parsed: Any) -> int:
    """CRC-64-AVRO fingerprint of a parsed schema's Parsing Canonical Form, as an unsigned int.

    fastavro gives the fingerprint's bytes in wire (little-endian) order as hex.
    """
    return int.from_bytes(
        bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")), "little"
    )


@dataclass
class Schema:
    """A parsed schema with what encoding and validation need, computed once."""

    name: str
    parsed: Any
    expanded: Any
    fingerprint: int
    header: bytes
    # The schema as written (docs and all), the text a schema registry is given.
    text: str = ""
    # Parsed again with fastavro's "already parsed" mark, so reads and writes skip re-parsing the
    # schema on every call (half the cost of decoding a record); `parsed` stays the plain form.
    fast: Any = None
    # The same encoding with logical types read as their primitives (timestamp-millis as a long):
    # fastavro's conversion to datetime was more than half the cost of decoding an IncidentReport
    # (measured), and the pipelines want epoch milliseconds anyway.
    plain: Any = None

    @classmethod
    def from_json(cls, raw: dict | str) -> Schema:
        if isinstance(raw, str):
            raw = json.loads(raw)
        parsed = fastavro.parse_schema(raw, _write_hint=False)
        fp = schema_fingerprint(parsed)
        return cls(
            name=parsed["name"],
            parsed=parsed,
            expanded=expand_schema(raw),
            fingerprint=fp,
            header=MAGIC + struct.pack("<Q", fp),
            text=json.dumps(raw, separators=(",", ":")),
            fast=fastavro.parse_schema(raw),
            plain=fastavro.parse_schema(_without_logical_types(raw)),
        )

    @classmethod
    def from_file(cls, path: Path) -> Schema:
        return cls.from_json(json.loads(Path(path).read_text()))


@dataclass
class SchemaRegistry:
    """The reader schemas by short name, and every known writer schema by fingerprint."""

    by_name: dict[str, Schema] = field(default_factory=dict)
    by_fingerprint: dict[int, Schema] = field(default_factory=dict)

    def add(self, schema: Schema, *, current: bool = True) -> Schema:
        if current:
            self.by_name[schema.name.rsplit(".", 1)[-1]] = schema
        self.by_fingerprint[schema.fingerprint] = schema
        return schema

    def add_writer(self, raw: dict | str) -> Schema:
        """Register an earlier (or newer) version of a schema that messages may have been written with."""
        return self.add(Schema.from_json(raw), current=False)

    def get(self, name: str) -> Schema:
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown schema {name!r}; known: {', '.join(sorted(self.by_name))}") from None

    @classmethod
    def load(cls, directory: Path = SCHEMA_DIR) -> SchemaRegistry:
        registry = cls()
        for path in sorted(Path(directory).glob("*.avsc")):
            registry.add(Schema.from_file(path))
        # Earlier versions a topic still holds records of (e.g. the unsigned ledger entries written before
        # LedgerEntry had its signature): known as writers, read resolved to the current schema.
        for path in sorted((Path(directory) / "previous").glob("*.avsc")):
            registry.add(Schema.from_file(path), current=False)
        return registry


_default: SchemaRegistry | None = None


def default_registry() -> SchemaRegistry:
    """The registry of the schemas shipped in `schemas/`, loaded once per process."""
    global _default
    if _default is None:
        _default = SchemaRegistry.load()
    return _default


@functools.cache
def default_topic(schema_name: str) -> str:
    """The topic tocsin writes a schema's records to (tocsin/topics.yaml), for its registry subject."""
    # Imported here: only registry framing needs the topic list (and kafka-python, which it loads).
    from tocsin.kafka.topics import load_topics  # noqa: PLC0415

    return load_topics().by_schema(schema_name.rsplit(".", 1)[-1]).name


def registry_id(schema: Schema, topic: str | None, settings: SerializationSettings) -> int:
    """The registry's id of `schema` under its topic's subject, registered on first use (cached)."""
    subject = value_subject(topic or default_topic(schema.name))
    return registry_client(settings.schema_registry_url).register(subject, schema.text)


def encode(
    schema: Schema,
    datum: dict,
    *,
    check: bool = True,
    topic: str | None = None,
    settings: SerializationSettings | None = None,
) -> bytes:
    """Encode one record; with `check`, validate first and raise ValidationFailed with every error.

    Framed as `settings` say (default: the process's, tocsin.serde.wire); registry framing registers
    the schema under `<topic>-value`, `topic` defaulting to the one topics.yaml gives the schema.
    """
    if check:
        errors = validate(datum, schema.expanded)
        if errors:
            raise ValidationFailed(schema.name, errors)
    settings = settings or wire.current()
    out = io.BytesIO()
    if settings.serialization == "registry":
        out.write(registry_header(registry_id(schema, topic, settings)))
    else:
        out.write(schema.header)
    fastavro.schemaless_writer(out, schema.fast, datum)
    return out.getvalue()


def writer_by_id(schema_id: int, registry: SchemaRegistry, settings: SerializationSettings) -> Schema:
    """The writer schema a registry id names, fetched once from the registry. A schema tocsin knows
    (same fingerprint) is the known one, already parsed; an unknown one is added as a writer."""
    if not settings.schema_registry_url:
        raise SerdeError(
            f"registry-framed message (schema id {schema_id}) but no schema registry is configured "
            "(--schema-registry-url, TOCSIN_SCHEMA_REGISTRY_URL)"
        )
    key = (settings.schema_registry_url, schema_id)
    if key not in _by_registry_id:  # the hot path is this one dict look-up per record
        parsed = Schema.from_json(registry_client(settings.schema_registry_url).schema(schema_id))
        _by_registry_id[key] = registry.by_fingerprint.get(parsed.fingerprint) or registry.add(
            parsed, current=False
        )
    return _by_registry_id[key]


_by_registry_id: dict[tuple[str, int], Schema] = {}


def _without_logical_types(schema):
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(v) for v in schema]
    return schema


def _read(message: bytes, registry: SchemaRegistry | None, parsed) -> tuple[dict, Schema]:
    """(record, writer schema): the body read with the writer schema named by the message's fingerprint;
    `parsed(writer)` gives (the writer's parsed form to read with, the reader's or None)."""
    registry = registry or default_registry()
    if message[:2] == MAGIC and len(message) >= HEADER_SIZE:
        # The default framing without building a Frame: this runs once per record of every pipeline.
        fp, offset = struct.unpack_from("<Q", message, 2)[0], HEADER_SIZE
        writer = registry.by_fingerprint.get(fp)
        if writer is None:
            raise SerdeError(f"unknown writer schema fingerprint {fp:016x}")
    else:
        frame = unframe(message)  # registry-framed, or a SerdeError naming what the header is
        writer, offset = writer_by_id(frame.writer, registry, wire.current()), frame.body_offset
    body = io.BytesIO(message)
    body.seek(offset)
    try:
        record = fastavro.schemaless_reader(body, *parsed(writer))
    except Exception as exc:  # fastavro raises several types for corrupt bodies
        raise SerdeError(f"cannot decode {writer.name} body: {type(exc).__name__}: {exc}") from exc
    extra = len(message) - body.tell()
    if extra:  # a record is the whole message: bytes after it mean a corrupt or forged one
        raise SerdeError(f"{writer.name} body: {extra} byte(s) after the record")
    return record, writer


def decode_plain(message: bytes, registry: SchemaRegistry | None = None) -> tuple[dict, Schema]:
    """(record, writer schema) of a message, decoded with its writer schema and logical types left as
    their primitives (timestamps as epoch milliseconds): the pipelines' fast path."""
    return _read(message, registry, lambda writer: (writer.plain, None))


def decode(message: bytes, reader: Schema | None = None, registry: SchemaRegistry | None = None) -> dict:
    """Decode one message with the writer schema named by its fingerprint, resolved to `reader`."""

    def parsed(writer: Schema):
        same = reader is None or reader.fingerprint == writer.fingerprint
        return writer.fast, None if same else reader.fast

    return _read(message, registry, parsed)[0]
