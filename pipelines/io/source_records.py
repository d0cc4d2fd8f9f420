"""What the Kafka source emits: its output tags, records, progress markers and combined elements."""

from __future__ import annotations

from typing import Any, NamedTuple

from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from tocsin.pipelines.io.source_config import Combiner

PROGRESS = "progress"
DEAD_LETTER = "dead_letter"
LATE = "late"
GLOBAL_WINDOWS = (GlobalWindow(),)


class KafkaRecord(NamedTuple):
    """A consumed record: where it came from, and its raw or decoded value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    timestamp_ms: int
    headers: tuple = ()


class Progress(NamedTuple):
    """All records of (topic, partition) below `next_offset` have event time <= `max_event_ms`, and the
    records from `next_offset` on were read with the partition at watermark `watermark_ms` or later."""

    topic: str
    partition: int
    next_offset: int
    max_event_ms: int
    watermark_ms: int


def record_of(message, value, event_ms: int) -> KafkaRecord:
    """A confluent-kafka message as a KafkaRecord, with its decoded (or raw) value and event time."""
    return KafkaRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        value,
        event_ms,
        tuple(message.headers() or ()),
    )


def drained(combiner: Combiner | None):
    """A combiner's elements as global-window values at their timestamps (none for no combiner)."""
    if combiner is not None:
        for element, ts_ms in combiner.drain():
            yield WindowedValue(element, Timestamp(micros=ts_ms * 1000), GLOBAL_WINDOWS)
