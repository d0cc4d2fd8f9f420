"""Dead-letter transforms shared by tocsin's Beam jobs: late records as DeadLetter records, and encoding."""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.kafka_sink import OutRecord
from tocsin.serde.avro import default_registry, encode
from tocsin.serde.dead_letter import dead_letter
from tocsin.telemetry.metrics import DEAD_LETTERS


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
    def expand(self, letters):
        def as_record(letter):
            DEAD_LETTERS.labels(letter["stage"], letter["reason"]).inc()
            return OutRecord(letter["id"].encode(), encode(default_registry().get("DeadLetter"), letter))

        return letters | "Encode" >> beam.Map(as_record)
