"""What every connector shares: the transactional sink, cursors, batches, and per-connector metrics.

A connector is a pure parser (tocsin.formats: source bytes -> records or Rejects) plus a thin loop that
hands batches to `ConnectorSink.write_batch`. The sink writes the batch's records, its dead letters and the
connector's new cursor in one Kafka transaction: either all of them land or none does, so a connector
killed at any point restarts from its last committed cursor and the topic (as read by read_committed
consumers, which every tocsin consumer is) holds each source record exactly once.
"""

from __future__ import annotations

import json
import threading
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
# kafka-python (3.0) waits for a commit or an abort without a bound, and a producer whose transaction
# coordinator's broker was killed waited forever: it dropped the request it could not send to the dead
# broker (its sender re-queues such a request only when it found no coordinator at all) and so never
# sent the commit (tests/faults/test_cluster_broker_kill.py). A commit not finished in
# this long is handed to a new producer. A commit through a broker's failover takes the brokers' session
# timeout (9 s) to notice the dead broker, then a leader election and the new coordinator's load.
TRANSACTION_TIMEOUT_S = 30.0


class TransactionStuck(Exception):
    """A commit or an abort of the producer did not finish within TRANSACTION_TIMEOUT_S."""


def _within(call, seconds: float) -> None:
    """call() in a thread of its own, waiting `seconds` for it to return: its exception, or
    TransactionStuck. A call that never returns leaves its (daemon) thread waiting on a producer that
    is closed and dropped."""
    outcome: list[BaseException | None] = []
    worker = threading.Thread(target=lambda: outcome.append(_run(call)), daemon=True)
    worker.start()
    worker.join(seconds)
    if not outcome:
        raise TransactionStuck(f"not finished within {seconds:g}s")
    if outcome[0] is not None:
        raise outcome[0]


def _run(call) -> BaseException | None:
    try:
        call()
    except BaseException as exc:  # handed to the waiting thread, which raises it
        return exc
    return None


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
        self._producer = self._start_producer()

    def _start_producer(self) -> KafkaProducer:
        """A producer of this instance's transactional id, initialised: it fences any older producer of
        the id, and the older one's open transaction is aborted, or completed if it was committing."""
        producer = self._new_producer()
        producer.init_transactions()
        return producer

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            transactional_id=f"tocsin.connector.{self.instance}",
            acks="all",
            linger_ms=10,
            **self.client,
        )

    def _committed_state(self) -> bytes | None:
        """The value of this instance's last committed cursor record, or None on a first run."""
        key = self.instance.encode()
        mine = [r for r in read_topic(self.client, self.state_topic) if r.key == key and r.value is not None]
        return mine[-1].value if mine else None

    def load_cursor(self) -> dict | None:
        """The last committed cursor of this instance, or None on a first run."""
        value = self._committed_state()
        return json.loads(decode(value, self.cursor_schema)["cursor_json"]) if value else None

    def write_batch(self, batch: Batch, cursor: dict, *, source: str | None = None) -> tuple[int, int]:
        """Commit the batch's records, dead letters and the cursor after them, atomically.

        Returns (records produced, dead letters); a record failing schema validation becomes a dead letter.
        A transaction that does not finish in time is handed to a new producer (`_take_over`).
        """
        started = time.monotonic()
        messages, produced, dead = self._messages(batch, cursor, source)
        while True:
            try:
                self._transaction(messages)
                break
            except TransactionStuck:
                if self._take_over(messages[-1][2]):
                    break
        RECORDS.labels(self.connector, "produced").inc(produced)
        RECORDS.labels(self.connector, "dead_letter").inc(dead)
        LAST_SUCCESS.labels(self.connector).set(time.time())
        BATCH_SECONDS.labels(self.connector).inc(time.monotonic() - started)
        return produced, dead

    def _messages(
        self, batch: Batch, cursor: dict, source: str | None
    ) -> tuple[list[tuple[str, bytes, bytes]], int, int]:
        """The batch as (topic, key, value) to write, its cursor record last; records produced, dead
        letters. Encoded once, so that a transaction written again writes the same bytes."""
        messages: list[tuple[str, bytes, bytes]] = []
        produced = dead = 0
        for record in batch.records:
            try:
                value = encode(self.schema, record, topic=self.topic)
            except ValidationFailed as exc:
                batch.rejects.append(Reject("schema-invalid", exc.errors, json.dumps(record, default=str)))
                continue
            messages.append((self.topic, record["id"].encode(), value))
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
            value = encode(self.dead_letter_schema, letter, topic=self.dead_letter_topic)
            messages.append((self.dead_letter_topic, letter["id"].encode(), value))
            dead += 1
            DEAD_LETTERS.labels(f"connector.{self.connector}", reject.reason).inc()
        state = {
            "instance": self.instance,
            "connector": self.connector,
            "cursor_json": json.dumps(cursor, sort_keys=True),
            "updated_at": now_ms(),
        }
        messages.append(
            (
                self.state_topic,
                self.instance.encode(),
                encode(self.cursor_schema, state, topic=self.state_topic),
            )
        )
        return messages, produced, dead

    def _transaction(self, messages: list[tuple[str, bytes, bytes]]) -> None:
        self._producer.begin_transaction()
        try:
            for topic, key, value in messages:
                self._producer.send(topic, key=key, value=value)
            _within(self._producer.commit_transaction, TRANSACTION_TIMEOUT_S)
        except TransactionStuck:
            raise  # not aborted: that would wait as the commit did; the producer is replaced
        except Exception:
            self._abort()
            raise

    def _take_over(self, state_value: bytes) -> bool:
        """A new producer in place of one whose transaction did not finish; whether that transaction,
        completed by the new producer's start, committed after all (its cursor record is the last one:
        the batch must not be written twice) or not (aborted: it is written again)."""
        self.log.warning(
            "transaction not finished in time: a new producer takes over", timeout_s=TRANSACTION_TIMEOUT_S
        )
        stuck, self._producer = self._producer, None
        # Closed aside: its close first flushes, which waits for its records to expire (the delivery
        # timeout, 2 minutes); the new producer has fenced it meanwhile, so nothing it sends is written.
        threading.Thread(target=_close_quietly, args=(stuck, 150), daemon=True).start()
        self._producer = self._start_producer()
        return self._committed_state() == state_value

    def _abort(self) -> None:
        try:
            _within(self._producer.abort_transaction, TRANSACTION_TIMEOUT_S)
        except TransactionStuck:
            self.log.warning("abort not finished in time: a new producer takes over")
            self._take_over(b"")
        except Exception as exc:  # the transaction may already be fenced or failed; the broker aborts it
            self.log.warning("abort failed", error=str(exc))

    def close(self) -> None:
        self._producer.close()


def _close_quietly(producer, timeout_s: float) -> None:
    try:
        producer.close(timeout=timeout_s)
    except Exception as exc:  # a producer given up on: what its close says changes nothing
        log.warning("closing a stuck producer failed", error=str(exc))


def _excerpt(raw: bytes | str) -> bytes:
    data = raw.encode("utf-8", "replace") if isinstance(raw, str) else raw
    return data[:EXCERPT]


def new_id() -> str:
    return uuid.uuid4().hex
