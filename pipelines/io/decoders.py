"""Value decoders for ReadFromKafka: bytes -> (record, event time in epoch ms or None).

A decoder that raises sends the record to the dead-letter output with the error; it never stops the
pipeline. Decoders are small classes (not closures) so runners can pickle them.
"""

from __future__ import annotations

import datetime as dt


class AvroWithEventTime:
    """Decode a tocsin Avro record (single-object encoding) and take its event time from `field`."""

    def __init__(self, schema_name: str, field: str | None = "event_time"):
        self.schema_name = schema_name
        self.field = field
        self._reader = None

    def __call__(self, value: bytes):
        from tocsin.serde.avro import decode, default_registry

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
        import orjson

        record = orjson.loads(value)
        if not isinstance(record, dict):
            raise ValueError(f"a JSON object was expected, not {type(record).__name__}")
        if self.field is None:
            return record, None
        stamp = record.get(self.field)
        if type(stamp) is not int:  # bool is an int subclass: refused too
            raise ValueError(f"{self.field} must be an integer of epoch milliseconds, not {stamp!r}")
        return record, stamp


class RawToObservation:
    """Decode a raw IncidentReport or NewsItem (by its writer schema) and normalise it to an observation.

    Normalising in the source saves a pipeline step per record; a record that cannot be normalised is a
    dead letter with reason normalise-error and every error found.
    """

    def __call__(self, value: bytes):
        from tocsin.pipelines.indicators.normalise import normalise
        from tocsin.serde.avro import decode_plain

        record, schema = decode_plain(value)
        observation = normalise(schema.name.rsplit(".", 1)[-1], record)
        return observation, observation["event_time"]


class SignalWithEventTime:
    """Decode an IndicatorSignal; its event time is its window end, or its start for an early pane.

    See tocsin.pipelines.rules.transforms: early panes of later windows must not move the alert stage's
    watermark past windows whose on-time pane is still to come.
    """

    def __call__(self, value: bytes):
        from tocsin.pipelines.rules.transforms import signal_event_time
        from tocsin.serde.avro import decode, default_registry

        signal = decode(value, default_registry().get("IndicatorSignal"))
        return signal, signal_event_time(signal)
