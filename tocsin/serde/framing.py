"""The two wire framings of a tocsin record, as plain functions over bytes (no I/O, no schemas).

- Avro single-object encoding (the default): `C3 01` + the 8-byte little-endian CRC-64-AVRO
  fingerprint of the writer schema + the Avro binary body.
- The schema registry's wire format (Confluent's, which Kafka Connect's AvroConverter, ksqlDB and the
  Confluent deserializers expect): `00` + the 4-byte big-endian id the registry gave the writer schema
  + the Avro binary body.

A reader tells them apart by the first byte, so a topic may hold both while producers move over.
"""

from __future__ import annotations

import struct
from typing import Literal, NamedTuple

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
SINGLE_OBJECT_HEADER = 10
REGISTRY_MAGIC = b"\x00"
REGISTRY_HEADER = 5


class SerdeError(ValueError):
    """A message could not be decoded (bad header, unknown writer schema, corrupt body)."""


class Frame(NamedTuple):
    """What a message's header names: its framing, the writer schema's fingerprint (single-object) or
    registry id (registry), and where the Avro body starts."""

    kind: Literal["single-object", "registry"]
    writer: int
    body_offset: int


def single_object_header(fingerprint: int) -> bytes:
    return SINGLE_OBJECT_MAGIC + struct.pack("<Q", fingerprint)


def registry_header(schema_id: int) -> bytes:
    if not 0 <= schema_id < 2**32:  # four unsigned bytes on the wire; Confluent's ids are positive ints
        raise ValueError(f"schema id {schema_id} does not fit the registry wire format's 4 bytes")
    return REGISTRY_MAGIC + struct.pack(">I", schema_id)


def unframe(message: bytes) -> Frame:
    """The frame of a message, by its first byte; SerdeError naming what was found otherwise."""
    if message[:2] == SINGLE_OBJECT_MAGIC:
        if len(message) < SINGLE_OBJECT_HEADER:
            raise SerdeError(f"single-object message of {len(message)} bytes: shorter than its header")
        return Frame("single-object", struct.unpack_from("<Q", message, 2)[0], SINGLE_OBJECT_HEADER)
    if message[:1] == REGISTRY_MAGIC:
        if len(message) < REGISTRY_HEADER:
            raise SerdeError(f"registry-framed message of {len(message)} bytes: shorter than its header")
        return Frame("registry", struct.unpack_from(">I", message, 1)[0], REGISTRY_HEADER)
    if not message:
        raise SerdeError("empty message: neither Avro single-object (C3 01) nor registry-framed (00)")
    raise SerdeError(
        f"unknown magic byte 0x{message[0]:02x}: neither Avro single-object (C3 01) nor registry-framed (00)"
    )
