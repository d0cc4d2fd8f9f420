"""The Kafka source's watermark and lateness policy (source_watermark.py): pure, no Beam, a fake clock."""

from __future__ import annotations

import subprocess
import sys

from tocsin.pipelines.io.source_watermark import (
    FLOOR_MS,
    PartitionState,
    RecordGate,
    WatermarkPolicy,
    initial_states,
    is_idle,
    moved_on,
    observed,
    watermarks,
)

A, B = ("t", 0), ("t", 1)
T0 = 1_000.0  # the fake wall clock, in seconds
POLICY = WatermarkPolicy.from_seconds(max_out_of_orderness=2.0, idle_timeout=10.0)
REPLAY = WatermarkPolicy.from_seconds(max_out_of_orderness=3600.0, idle_timeout=10.0, close_when_idle=True)


def read(max_event_ms: int, at_s: float, watermark_ms: int = FLOOR_MS) -> PartitionState:
    """A partition whose latest event is `max_event_ms`, last read at `at_s`."""
    return PartitionState(watermark_ms, max_event_ms, at_s)


def test_the_watermark_is_the_latest_event_time_minus_the_out_of_orderness():
    result = watermarks({A: read(50_000, T0), B: read(30_000, T0)}, T0 + 1, POLICY)
    assert {tp: state.watermark_ms for tp, state in result.partitions.items()} == {A: 48_000, B: 28_000}
    assert result.watermark_ms == 28_000  # the slowest partition's
    assert result.idle == frozenset()


def test_an_idle_partition_stops_holding_the_watermark_back_after_the_idle_timeout():
    partitions = {A: read(50_000, T0 + 14), B: read(30_000, T0)}  # B has had nothing since T0
    before = watermarks(partitions, T0 + 9.9, POLICY)
    assert before.idle == frozenset() and before.watermark_ms == 28_000
    # 5 s past the idle timeout B creeps on from its bound at wall-clock speed; it does not jump to now.
    creeping = watermarks(partitions, T0 + 15, POLICY)
    assert creeping.idle == {B}
    assert creeping.partitions[B].watermark_ms == 28_000 + 5_000
    # Once it has crept past the busy partition (still read), the busy one alone holds the watermark.
    later = watermarks({A: read(50_000, T0 + 39), B: partitions[B]}, T0 + 40, POLICY)
    assert later.partitions[B].watermark_ms == 58_000
    assert later.watermark_ms == 48_000


def test_a_partition_that_never_had_a_record_is_at_the_wall_clock_once_idle():
    assert moved_on(read(FLOOR_MS, T0), T0 + 5, POLICY).watermark_ms == FLOOR_MS
    assert moved_on(read(FLOOR_MS, T0), T0 + 11, POLICY).watermark_ms == 1_001_000  # now - idle timeout


def test_records_waiting_unread_restart_a_partitions_idle_clock():
    waiting = observed(read(50_000_000, T0), FLOOR_MS, T0 + 12)  # the reader saw a backlog at T0 + 12
    assert waiting == read(50_000_000, T0 + 12)
    assert not is_idle(waiting, T0 + 13, REPLAY)
    # Not drained, so not closed: the bound holds.
    assert moved_on(waiting, T0 + 13, REPLAY).watermark_ms == 50_000_000 - 3_600_000


def test_close_when_idle_moves_an_idle_drained_partition_to_its_latest_event_time():
    drained = read(50_000_000, T0)
    assert moved_on(drained, T0 + 5, REPLAY).watermark_ms == 50_000_000 - 3_600_000  # not idle yet
    assert moved_on(drained, T0 + 12, REPLAY).watermark_ms == 50_000_000 + 2_000  # from the latest event on


def test_close_when_idle_adds_the_horizon_at_once():
    policy = WatermarkPolicy.from_seconds(3600.0, 10.0, close_when_idle=True, close_horizon=600)
    assert moved_on(read(50_000_000, T0), T0 + 10, policy).watermark_ms == 50_000_000 + 600_000


def test_without_close_when_idle_an_idle_partition_creeps_from_its_bound():
    policy = WatermarkPolicy.from_seconds(3600.0, 10.0)
    assert moved_on(read(50_000_000, T0), T0 + 12, policy).watermark_ms == 50_000_000 - 3_600_000 + 2_000


def test_the_watermark_never_goes_backwards():
    # An out-of-order batch keeps the latest event time, and so the watermark.
    after = observed(read(50_000, T0, watermark_ms=48_000), 10_000, T0 + 1)
    assert after.max_event_ms == 50_000
    assert moved_on(after, T0 + 1, POLICY).watermark_ms == 48_000
    # A partition closed while idle, whose records then resume: its bound is behind, its watermark stays.
    closed = moved_on(read(50_000_000, T0), T0 + 12, REPLAY)
    resumed = observed(closed, 50_000_100, T0 + 13)
    assert moved_on(resumed, T0 + 14, REPLAY).watermark_ms == closed.watermark_ms == 50_002_000
    # Nor does an on-time record older than the latest one.
    gate = RecordGate(read(50_000, T0, watermark_ms=48_000), POLICY)
    assert gate.admit(49_000) and gate.watermark_ms == 48_000 and gate.max_event_ms == 50_000


def test_a_record_later_than_the_allowed_lateness_is_late():
    policy = WatermarkPolicy.from_seconds(max_out_of_orderness=2.0, idle_timeout=10.0, allowed_lateness=1.0)
    gate = RecordGate(read(50_000, T0, watermark_ms=48_000), policy)
    assert gate.admit(47_000)  # exactly the allowed lateness behind the watermark: on time
    assert not gate.admit(46_999)
    assert (gate.watermark_ms, gate.max_event_ms) == (48_000, 50_000)  # a late record moves nothing
    strict = RecordGate(read(50_000, T0, watermark_ms=48_000), POLICY)
    assert strict.admit(48_000) and not strict.admit(47_999)


def test_the_watermark_moves_with_each_record_not_once_per_read():
    gate = RecordGate(read(FLOOR_MS, T0), POLICY)
    assert gate.admit(10_000) and gate.watermark_ms == 8_000
    assert not gate.admit(7_999)  # late because of the record before it in the same batch
    assert gate.admit(8_500) and gate.watermark_ms == 8_000  # disorder within the out-of-orderness
    assert gate.admit(20_000) and (gate.watermark_ms, gate.max_event_ms) == (18_000, 20_000)


def test_a_restriction_starts_at_the_watermark_it_resumes_with():
    assert initial_states([A, B], {A: 7_000}, T0) == {A: read(7_000, T0, 7_000), B: read(FLOOR_MS, T0)}


def test_the_policy_imports_no_beam():
    probe = "import sys, tocsin.pipelines.io.source_watermark; print('apache_beam' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
