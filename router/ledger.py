"""The ledger: who was warned, when, and what they did, as hash-chained entries on tocsin.ledger.v1.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own fields (canonical JSON),
so editing, deleting or reordering any entry breaks the chain from there on; `verify` says where.
The topic has one partition (one order) and one writer, the router; `chain` computes entries, the
`LedgerWriter` appends them durably (acks=all, one at a time, in order).

A chain alone proves nothing to a reader who did not watch it grow: whoever can write to the topic can
append correctly chained entries. So the router signs each entry's hash with its Ed25519 key (key id and
signature in the entry), and now and then signs a checkpoint of the chain head (sequence and hash) onto a
second topic only it may write: a ledger cut short, or rewritten, no longer holds what a checkpoint
vouched for. `ledger_verify.check` is the verification; this module builds, writes and reads.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from dataclasses import dataclass

from kafka import KafkaProducer

from tocsin.kafka.read import read_topic
from tocsin.router.ledger_keys import SigningKey
from tocsin.serde.avro import SerdeError, decode_plain, default_registry, encode
from tocsin.telemetry.logging import get_logger

GENESIS = "0" * 64
# What a signature covers, each kind with its own prefix so that no entry's signature can pass for a
# checkpoint's or the reverse.
ENTRY_SIGNED = b"tocsin ledger entry v1\n"
CHECKPOINT_SIGNED = b"tocsin ledger checkpoint v1\n"
# How often the router signs a checkpoint of the chain head (when it moved): the entries after the last
# checkpoint are what a cut tail can remove unseen, so at most this much of the ledger's history.
CHECKPOINT_EVERY_S = 5.0


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
    # The router's signature of `hash` (which covers every other field), and the id of the key that made
    # it; None in an unsigned ledger (one written before signing, or by a router given no key).
    key_id: str | None = None
    signature: str | None = None

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


def rehashed(entry: Entry) -> str:
    """The hash an entry's own fields give: not its `hash` when it was edited."""
    e = entry
    return entry_hash(e.prev_hash, e.sequence, e.at, e.kind, e.subject_id, e.actor, e.payload_json)


def chain(
    previous: Entry | None,
    at: int,
    kind: str,
    subject_id: str,
    actor: str,
    payload: dict,
    key: SigningKey | None = None,
) -> Entry:
    sequence = previous.sequence + 1 if previous else 0
    prev_hash = previous.hash if previous else GENESIS
    payload_json = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    digest = entry_hash(prev_hash, sequence, at, kind, subject_id, actor, payload_json)
    entry = Entry(sequence, at, kind, subject_id, actor, payload_json, prev_hash, digest)
    return signed(entry, key) if key is not None else entry


def signed(entry: Entry, key: SigningKey) -> Entry:
    return dataclasses.replace(entry, key_id=key.id, signature=key.sign(ENTRY_SIGNED + entry.hash.encode()))


def from_record(record: dict) -> Entry:
    at = record["at"]
    if isinstance(at, dt.datetime):
        at = int(at.timestamp() * 1000)
    return Entry(**{**record, "at": at})


@dataclass(frozen=True)
class Checkpoint:
    """The router's signed word that the ledger's entry `sequence` has hash `hash` (and so, through the
    chain, that every entry before it is what it was)."""

    sequence: int
    hash: str
    at: int  # epoch ms, when it was signed
    key_id: str
    signature: str

    def as_record(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def checkpoint_message(sequence: int, entry_hash_hex: str, at: int) -> bytes:
    return CHECKPOINT_SIGNED + f"{sequence}:{entry_hash_hex}:{at}".encode()


def checkpoint(head: Entry, at: int, key: SigningKey) -> Checkpoint:
    return Checkpoint(
        head.sequence, head.hash, at, key.id, key.sign(checkpoint_message(head.sequence, head.hash, at))
    )


@dataclass(frozen=True)
class Read:
    """One record of a ledger or checkpoint topic as read: what it decoded to, or why it did not."""

    offset: int
    item: Entry | Checkpoint | None
    error: str | None = None


def parse_record(offset: int, value: bytes | None, schema_name: str) -> Read:
    """A topic's record as a Read: corrupt bytes, or a record of another schema, are an error, not an
    exception, so that one bad record is reported at its offset and the rest still read."""
    if value is None:
        return Read(offset, None, "no value (a tombstone)")
    try:
        record, writer = decode_plain(value)
    except SerdeError as error:
        return Read(offset, None, str(error))
    if writer.name != f"tocsin.{schema_name}":
        return Read(offset, None, f"a {writer.name.rsplit('.', 1)[-1]} record, not a {schema_name}")
    if schema_name == "LedgerEntry":
        return Read(offset, from_record(record))
    return Read(offset, Checkpoint(**record))


def verify(entries: list[Entry]) -> list[str]:
    """Every break in the chain, in order, each saying where; [] when the ledger is intact."""
    problems = []
    expected_seq, prev_hash = 0, GENESIS
    for position, entry in enumerate(entries):
        where = f"entry {position} (sequence {entry.sequence})"
        if rehashed(entry) != entry.hash:
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
    """Appends entries to the ledger topic in order, each acknowledged before the next is built; with a
    key, signs each, and signs a checkpoint of the head onto `checkpoints_topic` at start, then every
    CHECKPOINT_EVERY_S while the head moves (a thread of its own, so a quiet router's last entries are
    covered too), and at close. A checkpoint is sent after its entry was acknowledged: it never vouches
    for an entry the ledger does not have."""

    def __init__(
        self,
        client: dict,
        topic: str,
        last: Entry | None,
        key: SigningKey | None = None,
        checkpoints_topic: str | None = None,
        every_s: float = CHECKPOINT_EVERY_S,
        clock=time.time,
        transactional_id: str | None = None,
    ):
        self.topic = topic
        self.last = last
        self.key = key
        self.checkpoints_topic = checkpoints_topic if key is not None else None
        self.clock = clock
        # With a transactional id (the routers of one --ha-group share it, router/leader.py), each write
        # is a transaction, and making this producer fences every older one of that id: a router that
        # lost its leadership and did not notice cannot append one more entry (Kafka refuses its
        # epoch), so the chain has one writer even while two routers believe they lead.
        self._transactional = transactional_id is not None
        extra = {"transactional_id": transactional_id} if self._transactional else {}
        self._producer = KafkaProducer(
            acks="all", max_in_flight_requests_per_connection=1, retries=5, **extra, **client
        )
        self._send_lock = threading.Lock()  # one transaction at a time: entries and checkpoints
        if self._transactional:
            self._producer.init_transactions()
        self._checkpointed: Entry | None = None
        self._checkpoint_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.checkpoints_topic:
            self._thread = threading.Thread(target=self._every, args=(every_s,), daemon=True)
            self._thread.start()

    def append(self, at_ms: int, kind: str, subject_id: str, actor: str, payload: dict) -> Entry:
        entry = chain(self.last, at_ms, kind, subject_id, actor, payload, self.key)
        value = encode(default_registry().get("LedgerEntry"), entry.as_record())
        self._send(self.topic, str(entry.sequence).encode(), value)
        self.last = entry
        return entry

    def _send(self, topic: str, key: bytes, value: bytes) -> None:
        """One record, acknowledged (and committed, when transactional) before it returns."""
        with self._send_lock:
            if not self._transactional:
                self._producer.send(topic, key=key, value=value, partition=0).get(timeout=30)
                return
            self._producer.begin_transaction()
            try:
                self._producer.send(topic, key=key, value=value, partition=0).get(timeout=30)
            except Exception:
                self._producer.abort_transaction()  # or the producer refuses every later transaction
                raise
            self._producer.commit_transaction()

    def checkpoint(self) -> Checkpoint | None:
        """Sign and write a checkpoint of the head, if it moved since the last one."""
        with self._checkpoint_lock:
            head = self.last  # one read: append may replace it meanwhile, and this one is on the topic
            if head is None or head is self._checkpointed or not self.checkpoints_topic:
                return None
            made = checkpoint(head, int(self.clock() * 1000), self.key)
            value = encode(default_registry().get("LedgerCheckpoint"), made.as_record())
            self._send(self.checkpoints_topic, b"checkpoint", value)
            self._checkpointed = head
            return made

    def _every(self, every_s: float) -> None:
        # The first round at once: a restarted router vouches for the head it found. On a thread, so a
        # checkpoints topic that does not answer delays neither the start nor any entry.
        while True:
            try:
                self.checkpoint()
            except Exception as error:  # noqa: BLE001 (a broker away for a while: the next round tries)
                get_logger(stage="router").error(
                    "ledger checkpoint not written", topic=self.checkpoints_topic, error=str(error)
                )
            if self._stop.wait(every_s):
                return

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            self.checkpoint()
        finally:
            self._producer.close()


def read_records(client: dict, topic: str, schema_name: str = "LedgerEntry") -> list[Read]:
    """Every record of a ledger (or, with "LedgerCheckpoint", checkpoint) topic, in offset order."""
    return [parse_record(r.offset, r.value, schema_name) for r in read_topic(client, topic)]


def read_ledger(client: dict, topic: str) -> list[Entry]:
    """The entries of the topic that decode, as they are (unverified: `ledger_verify.check` says which
    to trust)."""
    return [r.item for r in read_records(client, topic) if r.item is not None]
