"""A downstream service subscribing to tocsin's alerts, with nothing of tocsin but its published schemas.

    pip install kafka-python fastavro
    tocsin schemas export schemas-export/          # or use schemas/ and schemas/previous/ of a checkout
    python examples/alert_consumer.py --bootstrap-servers 127.0.0.1:9092 \\
        --schemas schemas-export/ [--schema-registry-url http://127.0.0.1:8081]

tocsin writes each record in one of two framings, told apart by the first byte:
- Avro single-object encoding (the default): C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint
  of the writer schema's canonical form, then the Avro body. The writer schema is the one, among every
  version this service was given (`--schemas` folders: tocsin's schema history), whose fingerprint is
  that one; the fingerprint is checked, never assumed.
- The schema registry's wire format (`--serialization registry`): 00, the writer schema's 4-byte
  big-endian registry id, then the Avro body; the writer schema is fetched from the registry once.

Either way the body is read with its writer schema and resolved to this service's reader schema (Avro
schema resolution), so a new version of the schema (a field added with a default) reads as before, and
a record whose writer schema cannot be found is reported and skipped, not a crash. Each record is one
state of an alert (FIRING, UPDATED, RESOLVED), keyed by the alert id; keep the highest `sequence` per id.
Only committed records are read (`read_committed`): tocsin writes its alerts in transactions.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import sys
import urllib.request
from pathlib import Path

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form


class UnknownWriter(ValueError):
    """A record whose writer schema this service cannot find: skipped, with the reason."""


def schema_fingerprint(parsed) -> int:
    """CRC-64-AVRO of the Parsing Canonical Form, as the unsigned int single-object encoding carries."""
    return int.from_bytes(
        bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")), "little"
    )


class WriterSchemas:
    """Every writer schema the service may meet: by fingerprint from `.avsc` folders, by registry id
    from a schema registry (fetched once per id, then cached)."""

    def __init__(self, folders: list[Path], registry_url: str | None = None, name: str = "tocsin.Alert"):
        self.by_fingerprint: dict[int, dict] = {}
        self.by_id: dict[int, dict] = {}
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        for folder in folders:
            for path in sorted(Path(folder).glob("*.avsc")):
                parsed = fastavro.parse_schema(json.loads(path.read_text(encoding="utf-8")))
                if parsed["name"] == name:
                    self.by_fingerprint[schema_fingerprint(parsed)] = parsed

    def _fetch(self, schema_id: int) -> dict:
        if self.registry_url is None:
            raise UnknownWriter(
                f"registry-framed record (schema id {schema_id}) and no --schema-registry-url"
            )
        try:
            with urllib.request.urlopen(f"{self.registry_url}/schemas/ids/{schema_id}", timeout=10) as answer:
                text = json.loads(answer.read())["schema"]
        except urllib.error.HTTPError as error:
            raise UnknownWriter(f"schema id {schema_id}: the registry answered HTTP {error.code}") from None
        return fastavro.parse_schema(json.loads(text))

    def writer(self, value: bytes) -> tuple[dict, int]:
        """(the writer schema of a record, where its Avro body starts)."""
        if value[:2] == b"\xc3\x01" and len(value) >= 10:
            (fp,) = struct.unpack_from("<Q", value, 2)
            if fp not in self.by_fingerprint:
                raise UnknownWriter(
                    f"writer schema fingerprint {fp:016x} is in none of the --schemas folders"
                )
            return self.by_fingerprint[fp], 10
        if value[:1] == b"\x00" and len(value) >= 5:
            (schema_id,) = struct.unpack_from(">I", value, 1)
            if schema_id not in self.by_id:
                self.by_id[schema_id] = self._fetch(schema_id)
            return self.by_id[schema_id], 5
        raise UnknownWriter(f"unknown framing (first byte {value[:1].hex() or 'none'})")


def load_reader(path: str) -> dict:
    """This service's reader schema: what it reads every writer version as."""
    return fastavro.parse_schema(json.loads(Path(path).read_text(encoding="utf-8")))


def decode_alert(value: bytes, writers: WriterSchemas, reader: dict) -> dict:
    writer, start = writers.writer(value)
    return fastavro.schemaless_reader(io.BytesIO(value[start:]), writer, reader)


def main() -> None:
    from kafka import KafkaConsumer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="tocsin.alerts.v1")
    parser.add_argument("--schema", default="schemas/alert.avsc", help="This service's reader schema")
    parser.add_argument(
        "--schemas", action="append", help="Folder(s) of writer schemas (default: schemas, schemas/previous)"
    )
    parser.add_argument("--schema-registry-url", default=None)
    parser.add_argument("--group-id", default="my-service")
    args = parser.parse_args()

    reader = load_reader(args.schema)
    writers = WriterSchemas(
        [Path(f) for f in args.schemas or ["schemas", "schemas/previous"]], args.schema_registry_url
    )
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,  # commits where the service got to: a restart resumes there
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # never an alert of an aborted transaction
    )
    current: dict[str, dict] = {}
    for message in consumer:
        try:
            alert = decode_alert(message.value, writers, reader)
        except UnknownWriter as error:
            print(f"skipped {message.topic}/{message.partition}@{message.offset}: {error}", file=sys.stderr)
            continue
        if alert["sequence"] <= current.get(alert["id"], {}).get("sequence", 0):
            continue  # an older or repeated state
        current[alert["id"]] = alert
        print(f"{alert['status']:8} {alert['severity']:8} {alert['country']} {alert['summary']}")
        for item in alert["evidence"]:
            print(f"         evidence {item['record_id']} {item['url'] or ''}")


if __name__ == "__main__":
    main()
