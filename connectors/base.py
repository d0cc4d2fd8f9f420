"""What every connector shares: rejects, the transactional sink, cursors, and per-connector metrics.

A connector is a pure parser (source bytes -> records or Rejects) plus a thin loop that hands batches
to `ConnectorSink.write_batch`. The sink writes the batch's records, its dead letters and the
connector's new cursor in one Kafka transaction: either all of them land or none does, so a connector
killed at any point restarts from its last committed cursor and the topic (as read by read_committed
consumers, which every tocsin consumer is) holds each source record exactly once.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import structlog

from tocsin.serde.avro import default_registry, encode
from tocsin.serde.dead_letter import dead_letter
from tocsin.serde.validate import ValidationFailed
from tocsin.telemetry.metrics import DEAD_LETTERS, counter, gauge

log = structlog.get_logger("tocsin.connectors")

RECORDS = counter("tocsin_connector_records_total", "Source records by outcome", ["connector", "outcome"])
BYTES = counter("tocsin_connector_bytes_total", "Bytes of source data read", ["connector"])
LAST_SUCCESS = gauge(
    "tocsin_connector_last_success_timestamp_seconds", "When a batch was last committed", ["connector"]
)
POLL_ERRORS = counter("tocsin_connector_poll_errors_total", "Failed polls of a source", ["connector"])
BATCH_SECONDS = counter(
    "tocsin_connector_commit_seconds_total", "Time spent committing batches", ["connector"]
)

STATE_TOPIC = "tocsin.connector.state.v1"
DEAD_LETTER_TOPIC = "tocsin.deadletter.v1"
EXCERPT = 2048


@dataclass
class Reject:
    """A source record that cannot become a valid record: why, every error, and the raw excerpt."""

    reason: str
    errors: list[str]
    raw: bytes | str
    position: int | None = None


class BadFile(ValueError):
    """A source file that cannot be read at all: one line naming the file, raised before any of its rows
    (a bad row is a Reject; a bad file is not a dead letter per row)."""


class MissingColumns(BadFile):
    """A CSV header without a column the parser needs; each missing column is named by the names it may have
    ('date.created or created'), and the header is shown as given (an unnamed column as "")."""

    def __init__(self, source: str, missing: list[str], header: list[str] | None):
        self.source, self.missing, self.header = source, missing, header
        shown = ", ".join(name.lstrip("\ufeff") or '""' for name in header or ())
        has = f"the header has: {shown}" if header else "the file is empty"
        super().__init__(f"{source}: missing required column(s): {', '.join(missing)} ({has})")


def unreadable(path, exc: OSError | UnicodeDecodeError | csv.Error) -> BadFile:
    """The BadFile for a file that cannot be opened, is not UTF-8 text or not CSV the csv module can split
    (no byte offset for UTF-8: a streamed read only knows the offset within the chunk it was decoding)."""
    if isinstance(exc, UnicodeDecodeError):
        return BadFile(f"{path.name}: not UTF-8 text ({exc.reason})")
    if isinstance(exc, csv.Error):
        return BadFile(f"{path.name}: not readable as CSV ({exc})")
    return BadFile(f"{path.name}: cannot be read: {exc.strerror or exc}")


def column_names(header: Iterable[str]) -> list[str]:
    """Column names as the parsers look them up: trimmed, lower case, without a byte-order mark (which
    spreadsheet exports put before the first name)."""
    return [name.lstrip("\ufeff").strip().lower() for name in header]


def check_columns(source: str, header: list[str] | None, required: Iterable[tuple[str, ...]]) -> None:
    """Raise MissingColumns unless the header (as given) has one of the names of each `required` entry."""
    present = set(column_names(header or ()))
    missing = [" or ".join(names) for names in required if not present.intersection(names)]
    if missing:
        raise MissingColumns(source, missing, header)


def csv_rows(reader: csv.DictReader) -> Iterator[tuple[int, dict | Reject]]:
    """(line number, row) of every data line; a line with more values than the header has columns is a
    Reject (csv keeps the extra values under the key None). Line 1 is the header."""
    for row in reader:
        line = reader.line_num
        if None in row:
            values = len(row) - 1 + len(row[None])
            errors = [f"line {line}: {values} values for {len(reader.fieldnames)} columns"]
            yield line, Reject("parse-error", errors, repr(row), position=line)
            continue
        yield line, row


@dataclass
class Batch:
    records: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejects)


def epoch_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def now_ms() -> int:
    return int(time.time() * 1000)


class ConnectorSink:
    """Produce a connector's records, dead letters and cursor transactionally.

    `instance` names what is being read (connector and source), so two replays of different files keep
    separate cursors and a second process for the same instance fences the first (transactional id).
    """

    def __init__(
        self,
        client: dict,
        connector: str,
        instance: str,
        topic: str,
        schema_name: str,
        dead_letter_topic: str = DEAD_LETTER_TOPIC,
        state_topic: str = STATE_TOPIC,
    ):
        from kafka import KafkaProducer

        self.client = client
        self.connector = connector
        self.instance = instance
        self.topic = topic
        self.schema = default_registry().get(schema_name)
        self.dead_letter_schema = default_registry().get("DeadLetter")
        self.cursor_schema = default_registry().get("ConnectorCursor")
        self.dead_letter_topic = dead_letter_topic
        self.state_topic = state_topic
        self.log = log.bind(connector=connector, instance=instance, topic=topic)
        self._producer = KafkaProducer(
            transactional_id=f"tocsin.connector.{instance}",
            acks="all",
            linger_ms=10,
            **client,
        )
        self._producer.init_transactions()

    def load_cursor(self) -> dict | None:
        """The last committed cursor of this instance, or None on a first run."""
        from tocsin.kafka.read import read_topic
        from tocsin.serde.avro import decode

        key = self.instance.encode()
        mine = [r for r in read_topic(self.client, self.state_topic) if r.key == key and r.value is not None]
        return json.loads(decode(mine[-1].value, self.cursor_schema)["cursor_json"]) if mine else None

    def write_batch(self, batch: Batch, cursor: dict, *, source: str | None = None) -> tuple[int, int]:
        """Commit the batch's records, dead letters and the cursor after them, atomically.

        Returns (records produced, dead letters); a record failing schema validation becomes a dead letter.
        """
        started = time.monotonic()
        produced = dead = 0
        self._producer.begin_transaction()
        try:
            for record in batch.records:
                try:
                    value = encode(self.schema, record)
                except ValidationFailed as exc:
                    batch.rejects.append(
                        Reject("schema-invalid", exc.errors, json.dumps(record, default=str))
                    )
                    continue
                self._producer.send(self.topic, key=record["id"].encode(), value=value)
                produced += 1
            for reject in batch.rejects:
                letter = dead_letter(
                    stage=f"connector.{self.connector}",
                    reason=reject.reason,
                    errors=reject.errors,
                    payload=_excerpt(reject.raw),
                    source=source,
                    offset=reject.position,
                )
                self._producer.send(
                    self.dead_letter_topic,
                    key=letter["id"].encode(),
                    value=encode(self.dead_letter_schema, letter),
                )
                dead += 1
                DEAD_LETTERS.labels(f"connector.{self.connector}", reject.reason).inc()
            state = {
                "instance": self.instance,
                "connector": self.connector,
                "cursor_json": json.dumps(cursor, sort_keys=True),
                "updated_at": now_ms(),
            }
            self._producer.send(
                self.state_topic, key=self.instance.encode(), value=encode(self.cursor_schema, state)
            )
            self._producer.commit_transaction()
        except Exception:
            self._abort()
            raise
        RECORDS.labels(self.connector, "produced").inc(produced)
        RECORDS.labels(self.connector, "dead_letter").inc(dead)
        LAST_SUCCESS.labels(self.connector).set(time.time())
        BATCH_SECONDS.labels(self.connector).inc(time.monotonic() - started)
        return produced, dead

    def _abort(self) -> None:
        try:
            self._producer.abort_transaction()
        except Exception as exc:  # the transaction may already be fenced or failed; the broker aborts it
            self.log.warning("abort failed", error=str(exc))

    def close(self) -> None:
        self._producer.close()


def _excerpt(raw: bytes | str) -> bytes:
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return data[:EXCERPT]


def new_id() -> str:
    return uuid.uuid4().hex
