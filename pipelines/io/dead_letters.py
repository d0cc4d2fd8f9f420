"""Dead-letter transforms shared by tocsin's Beam jobs: late records as DeadLetter records, and encoding."""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.counters import DEAD_LETTERS
from tocsin.pipelines.io.kafka_sink import OutRecord
from tocsin.serde import wire
from tocsin.serde.avro import default_registry, encode
from tocsin.serde.dead_letter import dead_letter


class LateToDeadLetter(beam.PTransform):
    """Records the source found too far behind their partition's watermark, as DeadLetter records."""

    def __init__(self, stage: str, allowed_lateness_s: float = 0.0, reason: str = "late"):
        super().__init__()
        self.stage = stage
        self.allowed_lateness_s = allowed_lateness_s
        self.reason = reason

    def expand(self, late):
        stage, reason = self.stage, self.reason
        behind = (
            f"more than {self.allowed_lateness_s:g} s (the allowed lateness) behind the watermark"
            if self.allowed_lateness_s
            else "behind the watermark"
        )
        return late | "AsDeadLetter" >> beam.Map(
            lambda r: dead_letter(
                stage=stage,
                reason=reason,
                errors=[f"event time {r.timestamp_ms} ms is {behind}"],
                source=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                payload=r.value if isinstance(r.value, (bytes, str)) else repr(r.value),
            )
        )


class EncodeDeadLetters(beam.PTransform):
    """DeadLetter records -> OutRecords, framed as EncodeAvro frames (`topic`: the dead-letter topic,
    whose `<topic>-value` subject the schema is registered under with registry framing)."""

    def __init__(self, topic: str | None = None):
        super().__init__()
        self.topic = topic

    def expand(self, letters):
        topic, settings = self.topic, wire.current()  # pickled with the step, as EncodeAvro's

        def as_record(letter):
            DEAD_LETTERS.labels(letter["stage"], letter["reason"]).inc()
            value = encode(default_registry().get("DeadLetter"), letter, topic=topic, settings=settings)
            return OutRecord(letter["id"].encode(), value)

        return letters | "Encode" >> beam.Map(as_record)
