"""CountPerKeyInWindows on the local streaming runner (Prism), driven by TestStream, and SliceCounts.

TestStream controls the watermark, so these tests show the window fires when the watermark passes
its end (not at end of input), that a window is emitted once, keyed for idempotent replacement, and
that sliding windows assembled from the reader's slice counts hold exactly what counting every record
in every window it falls in gives.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tocsin.pipelines.window_count import CountPerKeyInWindows, SliceCounts, slice_ms
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.runners import streaming_options

pytestmark = pytest.mark.runner


def slices(spec: WindowSpec, records: list[tuple[str, int]]) -> list[TimestampedValue]:
    """The reader's output for records (key, event ms) read in one call."""
    combiner = SliceCounts(slice_ms(spec))
    for key, ms in records:
        combiner.add(key.encode(), None, ms)
    return [TimestampedValue(kv, ts / 1000) for kv, ts in combiner.drain()]


def counted(out):
    return out | beam.Map(lambda r: (r.key.decode(), json.loads(r.value)))


def test_slice_counts_are_per_key_and_slice_and_start_afresh():
    combiner = SliceCounts(300_000)
    for key, ms in [(b"a", 0), (b"a", 299_999), (b"a", 300_000), (None, 5), (b"b", 10)]:
        combiner.add(key, None, ms)
    assert sorted(combiner.drain()) == [
        (("", 1), 299_999),
        (("a", 1), 599_999),
        (("a", 2), 299_999),
        (("b", 1), 299_999),
    ]
    assert list(combiner.drain()) == []
    assert slice_ms(WindowSpec.parse("1h/5m")) == 300_000
    assert slice_ms(WindowSpec.parse("2h/30m")) == 1_800_000


def test_counts_per_key_in_fixed_windows_fire_with_the_watermark():
    spec = WindowSpec.parse("10s")
    stream = (
        TestStream()
        .add_elements(slices(spec, [("SDN", 1000), ("SDN", 2000), ("MLI", 3000)]))
        .advance_watermark_to(10)  # window [0, 10) closes here, before the rest arrives
        .add_elements(slices(spec, [("SDN", 11_000), ("SDN", 19_500)]))
        .advance_watermark_to(25)
        .add_elements(slices(spec, [("MLI", 26_000)]))
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        out = counted(p | stream | CountPerKeyInWindows(spec))
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


def test_sliding_windows_from_slices_equal_counting_every_record_in_every_window():
    spec = WindowSpec.parse("1h/5m")
    rng = random.Random(7)
    records = sorted(
        ((f"k{rng.randrange(3)}", rng.randrange(0, 3 * 3600_000)) for _ in range(2000)), key=lambda r: r[1]
    )
    truth: Counter = Counter()
    for key, ms in records:
        for start in range(ms - ms % 300_000 - 3600_000 + 300_000, ms + 1, 300_000):
            truth[(f"{key}@{start}", start + 3600_000)] += 1
    stream = TestStream()
    for i in range(0, len(records), 500):  # four read calls, the watermark moving on after each
        chunk = records[i : i + 500]
        stream = stream.add_elements(slices(spec, chunk)).advance_watermark_to(chunk[-1][1] / 1000)
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline(options=streaming_options([])) as p:
        out = counted(p | stream | CountPerKeyInWindows(spec))
        assert_that(
            out | beam.Map(lambda kv: (kv[0], kv[1]["window_end"], kv[1]["count"])),
            equal_to([(k, end, n) for (k, end), n in truth.items()]),
        )
