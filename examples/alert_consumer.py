"""A downstream service subscribing to tocsin's alerts, with nothing of tocsin but its published schema.

    pip install kafka-python fastavro
    python examples/alert_consumer.py --bootstrap-servers 127.0.0.1:9092 --schema schemas/alert.avsc

Messages on tocsin.alerts.v1 are Avro single-object encoded: the bytes C3 01, the 8-byte little-endian
CRC-64-AVRO fingerprint of the writer schema, then the Avro body. Each is one state of an alert (FIRING,
UPDATED, RESOLVED), keyed by the alert id; keep the highest `sequence` per id for its current state.
"""

from __future__ import annotations

import argparse
import io
import json

import fastavro
from fastavro.schema import fingerprint, to_parsing_canonical_form


def load_schema(path: str):
    schema = fastavro.parse_schema(json.load(open(path, encoding="utf-8")))
    wire = bytes.fromhex(fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))
    return schema, wire


def decode_alert(value: bytes, schema, wire_fingerprint: bytes) -> dict:
    if value[:2] != b"\xc3\x01":
        raise ValueError("not an Avro single-object message")
    if value[2:10] != wire_fingerprint:
        # A newer writer schema: fetch the new schema file (schema evolution is backward compatible).
        raise ValueError(f"written with schema {value[2:10].hex()}, not the one loaded")
    return fastavro.schemaless_reader(io.BytesIO(value[10:]), schema)


def main() -> None:
    from kafka import KafkaConsumer

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap-servers", default="127.0.0.1:9092")
    parser.add_argument("--topic", default="tocsin.alerts.v1")
    parser.add_argument("--schema", default="schemas/alert.avsc")
    parser.add_argument("--group-id", default="my-service")
    args = parser.parse_args()

    schema, wire = load_schema(args.schema)
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap_servers,
        group_id=args.group_id,  # commits where the service got to: a restart resumes there
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    current: dict[str, dict] = {}
    for message in consumer:
        alert = decode_alert(message.value, schema, wire)
        if alert["sequence"] <= current.get(alert["id"], {}).get("sequence", 0):
            continue  # an older or repeated state
        current[alert["id"]] = alert
        print(f"{alert['status']:8} {alert['severity']:8} {alert['country']} {alert['summary']}")
        for item in alert["evidence"]:
            print(f"         evidence {item['record_id']} {item['url'] or ''}")


if __name__ == "__main__":
    main()
