"""WriteToKafka: a Beam sink with an idempotent, acks=all producer that flushes at bundle end.

Delivery errors fail the bundle (so the runner retries it) instead of being logged and lost: a bundle
only completes once every record it wrote is acknowledged by the brokers. The sink's output is an empty
PCollection whose watermark says "everything up to here is durable", which CommitWhenDurable waits on.
"""

from __future__ import annotations

from typing import NamedTuple

import apache_beam as beam
from kafka import KafkaProducer

from tocsin.cli_errors import KAFKA_UNREACHABLE
from tocsin.pipelines.io.clients import when_broker_answers
from tocsin.pipelines.io.counters import DELIVERY_ERRORS, RECORDS_PRODUCED


class OutRecord(NamedTuple):
    """A record to write: key and value as bytes, optional headers [(name, bytes)]."""

    key: bytes | None
    value: bytes
    headers: tuple = ()


class SinkError(RuntimeError):
    """Kafka refused or failed to acknowledge records of a bundle."""


class _Write(beam.DoFn):
    def __init__(self, client: dict, topic: str, extra_producer_config: dict | None = None):
        self.client = client
        self.topic = topic
        self.extra = extra_producer_config or {}
        self._producer = None
        self._errors: list[BaseException] = []
        self._pending = 0

    def setup(self):
        # Retried while the broker does not answer: a runner sets a DoFn up mid-stream too (clients.py).
        self._producer = when_broker_answers(
            lambda: KafkaProducer(
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                batch_size=262_144,
                compression_type=None,
                # kafka-python backs off reconnecting up to 30 s (the Java client: 1 s): after a broker
                # restart the sinks of a job came back up to half a minute apart, and the windows one
                # wrote late reached the topic after later windows (tests/faults/test_broker_restarts.py).
                reconnect_backoff_max_ms=1000,
                **self.client,
                **self.extra,
            ),
            f"the producer to {self.topic}",
        )

    def start_bundle(self):
        self._errors = []
        self._pending = 0

    def _send(self, record: OutRecord):
        return self._producer.send(
            self.topic, key=record.key, value=record.value, headers=list(record.headers) or None
        )

    def process(self, record: OutRecord):
        try:
            future = self._send(record)
        except KAFKA_UNREACHABLE:
            # No metadata within the producer's max_block_ms (60 s): it had not reconnected to a broker
            # that restarted, and the bundle failed the job. Nothing was appended: sent again (clients.py).
            future = when_broker_answers(lambda: self._send(record), f"a record to {self.topic}")
        future.add_errback(self._errors.append)
        self._pending += 1

    def finish_bundle(self):
        self._producer.flush()
        if self._errors:
            DELIVERY_ERRORS.labels(self.topic).inc(len(self._errors))
            first = self._errors[0]
            raise SinkError(
                f"{len(self._errors)} of {self._pending} records to {self.topic} were not "
                f"acknowledged: {type(first).__name__}: {first}"
            )
        RECORDS_PRODUCED.labels(self.topic).inc(self._pending)

    def teardown(self):
        if self._producer is not None:
            self._producer.close()


class WriteToKafka(beam.PTransform):
    """Write OutRecords to a topic; returns an (empty) PCollection that marks durable progress."""

    def __init__(self, client: dict, topic: str, extra_producer_config: dict | None = None):
        super().__init__()
        self.client = client
        self.topic = topic
        self.extra = extra_producer_config

    def expand(self, records):
        return records | "Produce" >> beam.ParDo(_Write(self.client, self.topic, self.extra))
