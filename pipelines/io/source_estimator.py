"""ShardWatermark: Beam's watermark estimator over the source's pure policy (source_watermark.py).

It keeps the state of a shard's partitions between read calls (Beam checkpoints it with the
restriction) and reports the slowest partition's watermark. The clock is the reader's: every method
that needs the time takes `now`.
"""

from __future__ import annotations

from apache_beam.io.iobase import WatermarkEstimator
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from tocsin.pipelines.io.source_watermark import (
    FLOOR_MS,
    PartitionState,
    WatermarkPolicy,
    is_idle,
    observed,
    slowest,
    watermarks,
)


class ShardWatermark(WatermarkEstimator):
    """The watermark of a shard. State: {(topic, partition): (wm_ms, max_event_ms, active_s)}."""

    def __init__(self, state: dict, policy: WatermarkPolicy):
        self.policy = policy
        self.partitions = {tp: PartitionState(*v) for tp, v in state.items()}

    # Beam wraps the estimator in a proxy that only forwards method calls: accessors, not attributes.
    def partition_states(self) -> dict:
        return dict(self.partitions)

    def partition_watermarks(self) -> dict:
        return {tp: state.watermark_ms for tp, state in self.partitions.items()}

    def idle(self, now: float) -> list:
        """The partitions idle at `now`, in partition order."""
        return [tp for tp, state in self.partitions.items() if is_idle(state, now, self.policy)]

    def observe(self, tp, max_event_ms: int, now: float) -> None:
        """Partition `tp` had records read up to event time `max_event_ms` (or waiting: FLOOR_MS)."""
        self.partitions[tp] = observed(self.partitions[tp], max_event_ms, now)

    def advance(self, now: float) -> None:
        self.partitions = watermarks(self.partitions, now, self.policy).partitions

    def watermark_millis(self) -> int:
        return slowest(self.partitions)

    def observe_timestamp(self, timestamp):
        pass  # event times are observed per partition with observe()

    def current_watermark(self):
        wm = self.watermark_millis()
        return MIN_TIMESTAMP if wm <= FLOOR_MS else Timestamp(micros=wm * 1000)

    def get_estimator_state(self):
        # Plain tuples: what the state coder has always carried.
        return {tp: tuple(state) for tp, state in self.partitions.items()}
