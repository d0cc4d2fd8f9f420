"""The Kafka source's Beam shells (the watermark estimator, the restriction tracker, the reader's backlog
check) and commit boundaries; the watermark policy itself is tested in test_watermark_policy.py."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from tocsin.pipelines.io.commit import (
    CommitWhenDurable,
    choose_commits,
    committable_at,
    window_boundary_after,
)
from tocsin.pipelines.io.kafka_source import Progress, SourceConfig
from tocsin.pipelines.io.source_estimator import ShardWatermark
from tocsin.pipelines.io.source_read import ReadShard
from tocsin.pipelines.io.source_restriction import ShardOffsets, ShardOffsetsTracker
from tocsin.pipelines.io.source_watermark import FLOOR_MS, PartitionState, WatermarkPolicy
from tocsin.pipelines.options import KafkaOptions, kafka_client_config
from tocsin.runners import streaming_options

A, B = ("t", 0), ("t", 1)
POLICY = WatermarkPolicy.from_seconds(max_out_of_orderness=2.0, idle_timeout=10.0)


def estimator(now: float) -> ShardWatermark:
    return ShardWatermark({A: (FLOOR_MS, FLOOR_MS, now), B: (FLOOR_MS, FLOOR_MS, now)}, POLICY)


def test_the_policy_floor_is_beams_min_timestamp():
    assert FLOOR_MS == MIN_TIMESTAMP.micros // 1000


def test_estimator_reports_the_slowest_partition_minus_out_of_orderness():
    wm = estimator(1000.0)
    assert wm.current_watermark() == MIN_TIMESTAMP  # no data, not idle yet: no watermark
    wm.observe(A, 50_000, now=1001.0)
    wm.observe(B, 30_000, now=1001.0)
    wm.advance(now=1002.0)
    assert wm.partition_watermarks() == {A: 48_000, B: 28_000}
    assert wm.watermark_millis() == 28_000
    assert wm.current_watermark() == Timestamp(micros=28_000_000)


def test_estimator_moves_idle_partitions_with_the_clock_it_is_given():
    wm = estimator(1000.0)
    wm.observe(A, 50_000, now=1000.0)
    wm.observe(B, 30_000, now=1014.0)
    assert wm.idle(now=1015.0) == [A]
    wm.advance(now=1015.0)  # A idle for 15 s, 5 s past the timeout; B read a second ago
    assert wm.partition_watermarks() == {A: 53_000, B: 28_000}


def test_estimator_state_is_plain_tuples_and_restores_the_same_estimator():
    wm = estimator(1000.0)
    wm.observe(A, 50_000, now=1001.0)
    wm.advance(now=1001.0)
    state = wm.get_estimator_state()
    assert state[A] == (48_000, 50_000, 1001.0) and type(state[A]) is tuple
    assert ShardWatermark(state, POLICY).partition_states() == wm.partition_states()


def test_the_config_gives_the_policy_its_settings_in_its_units():
    config = SourceConfig(
        client={},
        topics=("t",),
        group_id="g",
        max_out_of_orderness=5.0,
        idle_timeout=3.0,
        allowed_lateness=1.5,
        close_when_idle=True,
        close_horizon=60.0,
    )
    assert config.watermark_policy() == WatermarkPolicy(5_000, 3.0, 1_500, True, 60_000)
    assert ReadShard(config).create_watermark_estimator({}).policy == config.watermark_policy()


def test_reader_starts_each_partition_at_its_resume_watermark():
    reader = ReadShard(SourceConfig(client={}, topics=("t",), group_id="g"))
    state = reader.initial_estimator_state(None, ShardOffsets((("t", 0, 5), ("t", 1, 0)), (("t", 0, 7000),)))
    assert {tp: v[:2] for tp, v in state.items()} == {A: (7000, 7000), B: (FLOOR_MS, FLOOR_MS)}
    assert all(type(v) is tuple for v in state.values())


def test_tracker_claims_and_checkpoints_at_the_current_positions():
    tracker = ShardOffsetsTracker(ShardOffsets((("t", 0, 5), ("t", 1, 0)), (("t", 0, 7000),)))
    assert (
        tracker.try_claim(("t", 0, 5)) and tracker.try_claim(("t", 0, 9)) and tracker.try_claim(("t", 1, 3))
    )
    assert tracker.try_split(0.5) is None  # no cutting of unread offsets
    with pytest.raises(ValueError, match="only end by a checkpoint"):
        tracker.check_done()
    primary, residual = tracker.try_split(0)
    assert primary.done and primary.positions == (("t", 0, 5), ("t", 1, 0))
    assert residual == ShardOffsets((("t", 0, 10), ("t", 1, 4)), (("t", 0, 7000),))
    assert not tracker.try_claim(("t", 0, 10))
    tracker.check_done()


@pytest.mark.parametrize(
    ("event_ms", "size_ms", "expected"),
    [
        (0, 10_000, 10_000),
        (9_999, 10_000, 10_000),
        (10_000, 10_000, 20_000),
        (-1, 10_000, 0),
    ],
)
def test_commit_waits_for_the_end_of_the_window_holding_the_event(event_ms, size_ms, expected):
    assert window_boundary_after(event_ms, size_ms) == expected


def test_streaming_options_default_to_prism_in_loopback(monkeypatch, tmp_path):
    prism = tmp_path / "prism"
    prism.write_text("")
    monkeypatch.setenv("TOCSIN_PRISM_LOCATION", str(prism))
    opts = streaming_options([]).get_all_options()
    assert opts["runner"] == "PrismRunner" and opts["streaming"] is True
    assert opts["prism_location"] == str(prism) and opts["environment_type"] == "LOOPBACK"
    assert opts["experiments"] == ["prism_disable_sdf_split"]
    mine = streaming_options(["--experiments=use_fast_avro"]).get_all_options()["experiments"]
    assert mine == ["use_fast_avro", "prism_disable_sdf_split"]
    flink = streaming_options(["--runner=FlinkRunner", "--flink_job_server_jar=x.jar"]).get_all_options()
    assert flink["flink_master"] == "[local]" and flink["flink_job_server_jar"] == "x.jar"
    assert not flink["experiments"]


def test_missing_prism_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TOCSIN_PRISM_LOCATION", str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match="run `make prism`"):
        streaming_options([])


def test_kafka_pipeline_options_parse_with_dashes_or_underscores(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD", "p")  # a secret is never a flag
    opts = PipelineOptions(
        [
            "--bootstrap-servers=k1:9092,k2:9092",
            "--group-id=g",
            "--start=timestamp:1600000000000",
            "--idle_timeout=3s",
            "--source-shards=2",
            "--kafka-security-protocol=SASL_SSL",
            "--kafka-sasl-mechanism=SCRAM-SHA-512",
            "--kafka-sasl-username=u",
        ]
    ).view_as(KafkaOptions)
    assert (opts.group_id, opts.start, opts.idle_timeout, opts.source_shards) == (
        "g",
        "timestamp:1600000000000",
        3.0,
        2,
    )
    assert kafka_client_config(opts) == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "security_protocol": "SASL_SSL",
        "client_id": "tocsin",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "bootstrap_timeout_ms": 5000,
    }


H = 3_600_000
DAY_MS = 24 * H


def marker(partition: int, offset: int, max_event_ms: int, wm_ms: int = 0):
    return Progress("t", partition, offset, max_event_ms, wm_ms)


def test_a_sliding_window_commit_waits_for_the_last_window_holding_the_event_plus_lateness():
    # 1-day windows every hour, 1 hour of lateness: an event at 00:30 is in windows ending 01:00 ... 24:00
    assert committable_at(H // 2, DAY_MS, H, H) == DAY_MS + H
    assert committable_at(H // 2, H, H, 0) == H  # fixed windows: the end of its own window


def test_commits_take_per_partition_the_latest_marker_before_every_window_still_open():
    markers = [marker(0, 10, 5 * H, wm_ms=4 * H), marker(0, 20, 30 * H), marker(1, 7, 2 * H, wm_ms=H)]
    commits, emit_after, kept = choose_commits(
        markers, fired_ms=30 * H, size_ms=DAY_MS, period_ms=H, lateness_ms=H
    )
    # windows ending at or before 29:00 are final; windows ending after it start at or after 06:00
    assert emit_after == 29 * H
    assert {k: (m.next_offset, m.watermark_ms) for k, m in commits.items()} == {
        ("t", 0): (10, 4 * H),
        ("t", 1): (7, H),
    }
    assert kept == [markers[1]]


def test_nothing_is_committed_while_every_marker_still_feeds_an_open_window():
    commits, _, kept = choose_commits(
        [marker(0, 10, 5 * H)], fired_ms=20 * H, size_ms=DAY_MS, period_ms=H, lateness_ms=0
    )
    assert commits == {} and len(kept) == 1


def test_several_window_specs_commit_for_the_largest_size_and_the_common_period():
    commit = CommitWhenDurable.for_windows({}, "g", [(86_400, 3_600), (604_800, 86_400)], 7200)
    assert (commit.size_ms, commit.period_ms, commit.lateness_ms) == (604_800_000, 3_600_000, 7_200_000)


class _Ends:
    """Stands in for the consumer's end_offsets, the call _waiting makes."""

    def __init__(self, ends: dict):
        self.ends = ends

    def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}


def test_a_partition_turning_idle_is_checked_for_a_backlog_even_within_the_cache_second():
    b = ("t", 1)
    reader = ReadShard(SourceConfig(decode=None, client={}, topics=("t",), group_id="g", idle_timeout=1.0))
    consumer = _Ends({A: 10, b: 10})
    reader._fetched = {A: 10, b: 4}  # b has 6 unread records
    now = 1000.0
    policy = WatermarkPolicy.from_seconds(0.0, 1.0)
    wm = ShardWatermark({A: (FLOOR_MS, FLOOR_MS, now - 5), b: (FLOOR_MS, FLOOR_MS, now)}, policy)
    assert reader._waiting(consumer, wm, read={}, now=now) == set()  # only A looks idle: no backlog
    wm.partitions[b] = PartitionState(FLOOR_MS, FLOOR_MS, now - 5)  # b looks idle too, a moment later
    assert reader._waiting(consumer, wm, read={}, now=now + 0.1) == {b}  # not idle: records are waiting
