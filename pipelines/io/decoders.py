"""Value decoders for ReadFromKafka: bytes -> (record, event time in epoch ms or None).

A decoder that raises sends the record to the dead-letter output with the error; it never stops the
pipeline. Decoders are small classes (not closures) so runners can pickle them. These two are generic;
a job's own (an observation from a raw report, a signal) lives with the job.
"""

from __future__ import annotations

import datetime as dt

import orjson

from tocsin.serde.avro import decode, default_registry


class AvroWithEventTime:
    """Decode a tocsin Avro record (single-object encoding) and take its event time from `field`."""

    def __init__(self, schema_name: str, field: str | None = "event_time"):
        self.schema_name = schema_name
        self.field = field
        self._reader = None

    def __call__(self, value: bytes):
        if self._reader is None:
            self._reader = default_registry().get(self.schema_name)
        record = decode(value, self._reader)
        if self.field is None:
            return record, None
        stamp = record.get(self.field)
        if stamp is None:
            raise ValueError(f"{self.schema_name}.{self.field} is missing")
        if isinstance(stamp, dt.datetime):
            return record, int(stamp.timestamp() * 1000)
        return record, int(stamp)

    def __getstate__(self):
        return {"schema_name": self.schema_name, "field": self.field, "_reader": None}


class JsonWithEventTime:
    """Decode a JSON object; take its event time (epoch ms, an integer) from `field` if given."""

    def __init__(self, field: str | None = None):
        self.field = field

    def __call__(self, value: bytes):
        record = orjson.loads(value)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON object was expected, not {type(record).__name__}")
        if self.field is None:
            return record, None
        stamp = record.get(self.field)
        if type(stamp) is not int:  # bool is an int subclass: refused too
            raise ValueError(f"{self.field} must be an integer of epoch milliseconds, not {stamp!r}")
        return record, stamp
