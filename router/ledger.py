"""The ledger: who was warned, when, and what they did, as hash-chained entries on tocsin.ledger.v1.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields (canonical JSON),
so editing, deleting or reordering any entry breaks the chain from there on; `verify` says where.
The topic has one partition (one order) and one writer, the router; `chain` computes entries, the
`LedgerWriter` appends them durably (acks=all, one at a time, in order).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from kafka import KafkaProducer

from tocsin.kafka.read import read_topic
from tocsin.serde.avro import decode, default_registry, encode

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    sequence: int
    at: int  # epoch ms
    kind: str
    subject_id: str  # the alert (or silence) the entry is about
    actor: str  # router, an organisation and responder, or an operator
    payload_json: str
    prev_hash: str
    hash: str

    @property
    def payload(self) -> dict:
        return json.loads(self.payload_json)

    def as_record(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def entry_hash(
    prev_hash: str, sequence: int, at: int, kind: str, subject_id: str, actor: str, payload_json: str
) -> str:
    body = json.dumps(
        [sequence, at, kind, subject_id, actor, payload_json], separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def chain(previous: Entry | None, at: int, kind: str, subject_id: str, actor: str, payload: dict) -> Entry:
    sequence = previous.sequence + 1 if previous else 0
    prev_hash = previous.hash if previous else GENESIS
    payload_json = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = entry_hash(prev_hash, sequence, at, kind, subject_id, actor, payload_json)
    return Entry(sequence, at, kind, subject_id, actor, payload_json, prev_hash, digest)


def from_record(record: dict) -> Entry:
    at = record["at"]
    if isinstance(at, dt.datetime):
        at = int(at.timestamp() * 1000)
    return Entry(**{**record, "at": at})


def verify(entries: list[Entry]) -> list[str]:
    """Every break in the chain, in order, each saying where; [] when the ledger is intact."""
    problems = []
    expected_seq, prev_hash = 0, GENESIS
    for position, entry in enumerate(entries):
        where = f"entry {position} (sequence {entry.sequence})"
        recomputed = entry_hash(
            entry.prev_hash,
            entry.sequence,
            entry.at,
            entry.kind,
            entry.subject_id,
            entry.actor,
            entry.payload_json,
        )
        if recomputed != entry.hash:
            problems.append(f"{where}: its content does not match its hash: edited")
        if entry.sequence != expected_seq:
            what = "missing" if entry.sequence > expected_seq else "reordered or repeated"
            problems.append(f"{where}: expected sequence {expected_seq}: entries {what}")
        if entry.prev_hash != prev_hash:
            problems.append(f"{where}: prev_hash is not the hash of the entry before it")
        expected_seq, prev_hash = max(expected_seq, entry.sequence + 1), entry.hash
    return problems


def story(entries: list[Entry], alert_id: str) -> list[str]:
    """The lines of one alert's story, in ledger order, with times."""
    lines = []
    for entry in entries:
        if entry.subject_id != alert_id:
            continue
        when = dt.datetime.fromtimestamp(entry.at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{when}  #{entry.sequence:<5} {entry.kind:22} {entry.actor:28} {describe(entry)}")
    return lines


def describe(entry: Entry) -> str:
    p = entry.payload
    kind = entry.kind
    if kind == "alert.received":
        a = p["alert"]
        return f"{a['status']} {a['severity']} seq {a['sequence']}: {a['summary']}"
    if kind == "alert.routed":
        return "; ".join(
            f"route {r['route']} -> {r['receiver']} (group {r['group_key']})" for r in p["routes"]
        )
    if kind == "alert.muted":
        return f"not notified to {p['receiver']}: {p['by']} {p['source']}"
    if kind == "notification":
        error = f" ({p['error']})" if p.get("error") else ""
        return f"{p['receiver']} by {p['channel']}, attempt {p['attempt']}: {p['status']}{error}"
    if kind == "escalation":
        return f"not acknowledged: level {p['level']} -> {p['receiver']}"
    if kind in ("response", "comment"):
        details = [
            p.get("description"),
            p.get("reason"),
            p.get("referred_to") and f"referred to {p['referred_to']}",
        ]
        text = "; ".join(d for d in details if d)
        return f"{p['kind']}" + (f": {text}" if text else "")
    if kind == "alert.archived":
        return f"archived: resolved more than {p['retention_s']} s ago"
    if kind.startswith("silence."):
        return json.dumps(p, sort_keys=True)
    return entry.payload_json


class LedgerWriter:
    """Appends entries to the ledger topic in order, each acknowledged before the next is built."""

    def __init__(self, client: dict, topic: str, last: Entry | None):
        self.topic = topic
        self.last = last
        self._producer = KafkaProducer(
            acks="all", max_in_flight_requests_per_connection=1, retries=5, **client
        )

    def append(self, at_ms: int, kind: str, subject_id: str, actor: str, payload: dict) -> Entry:
        entry = chain(self.last, at_ms, kind, subject_id, actor, payload)
        value = encode(default_registry().get("LedgerEntry"), entry.as_record())
        self._producer.send(self.topic, key=str(entry.sequence).encode(), value=value, partition=0).get(
            timeout=30
        )
        self.last = entry
        return entry

    def close(self) -> None:
        self._producer.close()


def read_ledger(client: dict, topic: str) -> list[Entry]:
    return [from_record(decode(r.value)) for r in read_topic(client, topic)]
