"""Timers of a stateful stage fire once on the local runner, even when a bundle is slow.

Prism splits a bundle that makes no progress between two progress reports. In a stateful stage a bundle
mixes data of some keys with timers of others, and Prism 2.77 cuts that mix at the SDK's data index: the
timers past the cut fire again, at once, on the same state (Beam issue #35771). That is how the alert
job once emitted one alert's whole lifecycle four times. tocsin's runner options turn those splits off.
"""

from __future__ import annotations

import time

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import TimerSpec, on_timer
from apache_beam.transforms.window import TimestampedValue

from tocsin.runners import streaming_options

pytestmark = pytest.mark.runner

TIMER_KEYS, SLOW_KEYS = 30, 6


class SlowDataTimelyTimers(beam.DoFn):
    """Keys "t*" set a timer; keys "d*" take long enough for Prism to ask for a split."""

    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def process(self, element, due=beam.DoFn.TimerParam(DUE), at=beam.DoFn.TimestampParam):
        key, slow = element
        if slow:
            time.sleep(0.5)
            yield ("data", key)
        else:
            due.set(at + 5)

    @on_timer(DUE)
    def fired(self, key=beam.DoFn.KeyParam):
        yield ("timer", key)


def test_each_timer_fires_once_when_a_bundle_mixing_data_and_timers_is_slow():
    # The timers (due at 5) and the slow data (at 6) become ready together at watermark 7: one bundle.
    stream = (
        TestStream()
        .add_elements([TimestampedValue((f"t{i}", False), 0) for i in range(TIMER_KEYS)])
        .advance_watermark_to(1)
        .add_elements([TimestampedValue((f"d{i}", True), 6) for i in range(SLOW_KEYS)])
        .advance_watermark_to(7)
        .advance_watermark_to_infinity()
    )
    expected = [("timer", f"t{i}") for i in range(TIMER_KEYS)] + [("data", f"d{i}") for i in range(SLOW_KEYS)]
    with beam.Pipeline(options=streaming_options([])) as p:
        out = p | stream | "Keyed" >> beam.Map(lambda kv: kv) | "Fire" >> beam.ParDo(SlowDataTimelyTimers())
        assert_that(out, equal_to(expected))
