"""The Kafka side: one idempotent acks=all producer; a report is accepted only once the broker has it."""

from __future__ import annotations

import threading

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError

log = structlog.get_logger("tocsin.intake")


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge the record in time; the report was not accepted."""


class Publisher:
    """An idempotent acks=all producer, created on first use and replaced after a failure.

    Its own timeouts equal `timeout` and the request waits a second longer, so a record the producer gives
    up on has usually expired inside it before the request answers 503. A record already in flight may
    still land after a 503; the client's retry then adds a second record with another id (at least once,
    never a 202 without the broker's acknowledgement).
    """

    def __init__(self, client: dict, topic: str, timeout: float):
        self.client = client
        self.topic = topic
        self.timeout = timeout
        self._producer = None
        self._closed = False
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._producer is None:
                ms = int(self.timeout * 1000)
                self._producer = KafkaProducer(
                    **{
                        **self.client,
                        "acks": "all",
                        "enable_idempotence": True,
                        "linger_ms": 0,
                        "max_block_ms": ms,
                        "request_timeout_ms": ms,
                        "delivery_timeout_ms": ms,
                        "bootstrap_timeout_ms": ms,
                    }
                )
                if self._closed:  # closed while this producer was being made (close does not wait)
                    self._producer.close(timeout=0)
                    self._producer = None
                    raise BrokerUnavailable("the intake is stopping")
            return self._producer

    def warm_up(self) -> None:
        """Connect now rather than on the first report (errors are left for the first report)."""
        try:
            self._get()
        except Exception as exc:
            log.warning("kafka not reachable yet", error=type(exc).__name__)

    def warm_up_in_background(self) -> None:
        threading.Thread(target=self.warm_up, name="tocsin-intake-kafka", daemon=True).start()

    def publish(self, key: bytes, value: bytes):
        """Send and wait for the broker's acknowledgement; RecordMetadata, or BrokerUnavailable."""
        producer = None
        try:
            producer = self._get()
            return producer.send(self.topic, key=key, value=value).get(timeout=self.timeout + 1)
        except (KafkaError, OSError) as exc:
            self._discard(producer)
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _discard(self, producer) -> None:
        # A producer that failed may be stuck (fatal idempotence state, dead connections): start afresh,
        # and close the old one in the background so the failing request answers without waiting.
        with self._lock:
            if producer is None or producer is not self._producer:
                return
            self._producer = None
        threading.Thread(target=producer.close, kwargs={"timeout": 1}, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        # A producer still being made (Kafka unreachable) holds the lock for up to `timeout`: stopping
        # does not wait for it; _get closes it once made.
        if not self._lock.acquire(timeout=1):
            return
        try:
            producer, self._producer = self._producer, None
        finally:
            self._lock.release()
        if producer is not None:
            producer.close(timeout=self.timeout)
