"""The Kafka source's watermark and lateness policy, pure: partition state and the clock in, watermarks out.

No Beam and no clock reading here: the reader (source_read.py) and its watermark estimator
(source_estimator.py) pass `now` (time.time()) in, so the policy is tested with a fake clock
(tests/unit/test_watermark_policy.py).

Per partition, the watermark is the highest event time seen minus the allowed out-of-orderness. Once the
partition has been idle for `idle_timeout` it creeps on from there at wall-clock speed (never jumps to
now), so a replay of old data that pauses briefly does not make its next records late, while a quiet
partition stops holding the pipeline back. A partition that never had a record since the start is, once
idle, at the wall clock minus the idle timeout. With `close_when_idle` (replays of finished data), an
idle partition moves on from its latest event time plus `close_horizon` rather than from that minus the
out-of-orderness. The reference job's horizon is its window size, so every window holding data closes at
once; the indicator and alert jobs keep 0: the windows after the end of a replay's data would hold less
only because the data ends, and deciding them would resolve alerts the data never resolved.

"Idle" means: no record read, and none waiting, for `idle_timeout`. The reader reports a partition
whose records are waiting unfetched as `observed` (with FLOOR_MS), which restarts its idle clock: a
partition is only ever idle when every record of it has been read, so close_when_idle never closes a
window over a backlog. A watermark never goes backwards.

Lateness is decided per record (RecordGate): a record is late when its event time is behind its
partition's watermark as it stands at that record, moved on by every earlier record of the partition,
minus the allowed lateness.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

# Beam's MIN_TIMESTAMP in ms, written out so that this module needs no Beam (a unit test checks they
# agree): the watermark, or the latest event time, of a partition that has none yet.
FLOOR_MS = -9_223_372_036_854_775


@dataclass(frozen=True)
class WatermarkPolicy:
    """The settings of the policy, in the units it computes with (all picklable)."""

    out_of_orderness_ms: int
    idle_timeout_s: float
    allowed_lateness_ms: int = 0
    close_when_idle: bool = False
    close_horizon_ms: int = 0

    @classmethod
    def from_seconds(
        cls,
        max_out_of_orderness: float,
        idle_timeout: float,
        allowed_lateness: float = 0.0,
        close_when_idle: bool = False,
        close_horizon: float = 0.0,
    ) -> WatermarkPolicy:
        return cls(
            int(max_out_of_orderness * 1000),
            idle_timeout,
            int(allowed_lateness * 1000),
            close_when_idle,
            int(close_horizon * 1000),
        )


class PartitionState(NamedTuple):
    """What the policy knows of one partition between read calls."""

    watermark_ms: int
    max_event_ms: int  # the latest event time read (or the watermark resumed with)
    active_s: float  # wall-clock time records of it were last read or seen waiting: idle since then


class Watermarks(NamedTuple):
    """The outcome of `watermarks`: each partition's state with its watermark moved on, the partitions
    idle at that moment, and the watermark of them all (the slowest partition's)."""

    partitions: dict
    idle: frozenset
    watermark_ms: int


def initial_states(partitions: Iterable[Hashable], resume: Mapping, now: float) -> dict:
    """The state of each partition at the start of a restriction: at the watermark a restart resumes it
    with (none: FLOOR_MS), as if its latest event were there, active now."""
    return {tp: PartitionState(resume.get(tp, FLOOR_MS), resume.get(tp, FLOOR_MS), now) for tp in partitions}


def observed(state: PartitionState, max_event_ms: int, now: float) -> PartitionState:
    """A read call read records of the partition up to event time `max_event_ms`, or found records of it
    waiting (then FLOOR_MS): it is not idle. The watermark itself moves in `watermarks`."""
    return PartitionState(state.watermark_ms, max(state.max_event_ms, max_event_ms), now)


def is_idle(state: PartitionState, now: float, policy: WatermarkPolicy) -> bool:
    return now - state.active_s >= policy.idle_timeout_s


def moved_on(state: PartitionState, now: float, policy: WatermarkPolicy) -> PartitionState:
    """The partition's state with its watermark where the policy puts it at `now` (never back)."""
    candidate = state.max_event_ms - policy.out_of_orderness_ms
    idle_for = now - state.active_s
    if idle_for >= policy.idle_timeout_s:
        creep_ms = int((idle_for - policy.idle_timeout_s) * 1000)
        if state.max_event_ms <= FLOOR_MS:
            candidate = int((now - policy.idle_timeout_s) * 1000)
        elif policy.close_when_idle:
            candidate = state.max_event_ms + policy.close_horizon_ms + creep_ms
        else:
            candidate += creep_ms
    return state._replace(watermark_ms=candidate) if candidate > state.watermark_ms else state


def slowest(partitions: Mapping) -> int:
    """The watermark of a set of partitions: the minimum of theirs (FLOOR_MS for none)."""
    return min((state.watermark_ms for state in partitions.values()), default=FLOOR_MS)


def watermarks(partitions: Mapping, now: float, policy: WatermarkPolicy) -> Watermarks:
    """Every partition's watermark moved on to `now`, which partitions are idle, and the watermark."""
    moved = {tp: moved_on(state, now, policy) for tp, state in partitions.items()}
    idle = frozenset(tp for tp, state in partitions.items() if is_idle(state, now, policy))
    return Watermarks(moved, idle, slowest(moved))


class RecordGate:
    """One partition's watermark as it stands at each record of a read call: per-record exact lateness.

    The watermark moves with every on-time record (the highest event time so far minus the
    out-of-orderness), not once per call, so whether a record is late depends on the records before it in
    its partition only, never on how the reads fell. A late record moves nothing.
    """

    __slots__ = ("watermark_ms", "max_event_ms", "_ooo_ms", "_lateness_ms")

    def __init__(self, state: PartitionState, policy: WatermarkPolicy):
        self.watermark_ms = state.watermark_ms
        self.max_event_ms = state.max_event_ms
        self._ooo_ms = policy.out_of_orderness_ms
        self._lateness_ms = policy.allowed_lateness_ms

    def admit(self, event_ms: int) -> bool:
        """False for a late record; else True, with the watermark moved on by it."""
        if event_ms < self.watermark_ms - self._lateness_ms:
            return False
        if event_ms > self.max_event_ms:
            self.max_event_ms = event_ms
            if event_ms - self._ooo_ms > self.watermark_ms:
                self.watermark_ms = event_ms - self._ooo_ms
        return True
