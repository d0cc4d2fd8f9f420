"""CountPerKeyInWindows on the local streaming runner (Prism), driven by TestStream.

TestStream controls the watermark, so these tests show the window fires when the watermark passes
its end (not at end of input) and that a window is emitted once, keyed for idempotent replacement.
"""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tocsin.pipelines.io.kafka_source import KafkaRecord
from tocsin.pipelines.window_count import CountPerKeyInWindows
from tocsin.runners import streaming_options

pytestmark = pytest.mark.runner


def record(key: str, ts: float) -> TimestampedValue:
    return TimestampedValue(KafkaRecord("t", 0, 0, key.encode(), b"", int(ts * 1000)), ts)


def test_counts_per_key_in_fixed_windows_fire_with_the_watermark():
    stream = (
        TestStream()
        .add_elements([record("SDN", 1), record("SDN", 2), record("MLI", 3)])
        .advance_watermark_to(10)  # window [0, 10) closes here, before the rest arrives
        .add_elements([record("SDN", 11), record("SDN", 19.5)])
        .advance_watermark_to(25)
        .add_elements([record("MLI", 26)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        out = (
            p
            | stream
            | CountPerKeyInWindows(window_seconds=10)
            | beam.Map(lambda r: (r.key.decode(), json.loads(r.value)))
        )
        assert_that(
            out | beam.Map(lambda kv: (kv[0], kv[1]["count"], kv[1]["window_end"])),
            equal_to(
                [
                    ("SDN@0", 2, 10_000),
                    ("MLI@0", 1, 10_000),
                    ("SDN@10000", 2, 20_000),
                    ("MLI@20000", 1, 30_000),
                ]
            ),
        )
