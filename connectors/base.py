"""What every connector shares: the transactional sink, cursors, batches, and per-connector metrics.

A connector is a pure parser (tocsin.formats: source bytes -> records or Rejects) plus a thin loop that
hands batches to `ConnectorSink.write_batch`. The sink writes the batch's records, its dead letters and the
connector's new cursor in one Kafka transaction: either all of them land or none does, so a connector
killed at any point restarts from its last committed cursor and the topic (as read by read_committed
consumers, which every tocsin consumer is) holds each source record exactly once.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field

import structlog
from kafka import KafkaProducer

from tocsin.formats.records import Reject
from tocsin.kafka import topics
from tocsin.kafka.read import read_topic
from tocsin.serde.avro import decode, default_registry, encode
from tocsin.serde.dead_letter import dead_letter
from tocsin.serde.validate import ValidationFailed
from tocsin.telemetry.metrics import DEAD_LETTERS, counter, gauge
from tocsin.timestamps import now_ms

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

EXCERPT = 2048


@dataclass
class Batch:
    records: list[dict] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records) + len(self.rejects)


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
        dead_letter_topic: str = topics.DEAD_LETTERS,
        state_topic: str = topics.CONNECTOR_STATE,
    ):
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
                    value = encode(self.schema, record, topic=self.topic)
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
                    value=encode(self.dead_letter_schema, letter, topic=self.dead_letter_topic),
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
                self.state_topic,
                key=self.instance.encode(),
                value=encode(self.cursor_schema, state, topic=self.state_topic),
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
