"""ReadFromKafka: an unbounded Kafka source for Beam pipelines, as a Python splittable DoFn.

Each shard (one by default) reads its partitions with kafka-python and manual assignment (no group
rebalancing: the runner decides where work runs), in one restriction. Each partition has its own
watermark: the highest event time seen minus the allowed out-of-orderness; once the partition has been
idle for `idle_timeout` it moves on with the wall clock, so an idle partition never stalls the pipeline.
The shard reports the minimum. Records older than their partition's watermark are late: they leave on
the `late` output (to the dead-letter topic), never silently.

Offsets are not committed here: the source emits progress markers on the `progress` output, and
`CommitWhenDurable` (commit.py) commits an offset only once the pipeline's sink has flushed every window
that records below that offset fall in. On restart the source resumes from the committed offset and
with the committed watermark, so a crash never loses input and never double counts a window.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.iobase import RestrictionTracker, WatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from tocsin.telemetry.metrics import RECORDS_CONSUMED, counter, gauge

LATE_RECORDS = counter(
    "tocsin_source_late_records_total", "Records older than their partition's watermark", ["topic"]
)
SOURCE_WATERMARK = gauge(
    "tocsin_source_watermark_seconds", "Event-time watermark of a partition", ["topic", "partition"]
)
DECODE_ERRORS = counter("tocsin_source_decode_errors_total", "Records the source could not decode", ["topic"])
CONSUMER_LAG = gauge(
    "tocsin_source_consumer_lag_records",
    "Records of a partition not read yet (end offset - position)",
    ["topic", "partition"],
)
LAG_EVERY_S = 5.0  # end offsets are a broker round trip: asked for at most this often

FLOOR_MS = MIN_TIMESTAMP.micros // 1000
GLOBAL_WINDOWS = (GlobalWindow(),)
PROGRESS = "progress"
DEAD_LETTER = "dead_letter"
LATE = "late"


class KafkaRecord(NamedTuple):
    """A consumed record: where it came from, and its raw or decoded value."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: Any
    timestamp_ms: int
    headers: tuple = ()


class Progress(NamedTuple):
    """All records of (topic, partition) below `next_offset` have event time <= `max_event_ms`, and the
    records from `next_offset` on were read with the partition at watermark `watermark_ms` or later."""

    topic: str
    partition: int
    next_offset: int
    max_event_ms: int
    watermark_ms: int


@dataclass(frozen=True)
class SourceConfig:
    """Plain settings, so tests can shrink timeouts; all picklable."""

    client: dict
    topics: tuple[str, ...]
    group_id: str
    start: str = "committed"  # committed | earliest | latest | timestamp:<epoch ms>
    # With start=committed and nothing committed yet for the group: where to begin.
    start_if_uncommitted: str = "earliest"
    max_out_of_orderness: float = 5.0
    # Records up to this much behind their partition's watermark still go to the windows (as late data
    # that updates a window within the pipeline's allowed lateness); older ones go to the `late` output.
    allowed_lateness: float = 0.0
    idle_timeout: float = 10.0
    close_when_idle: bool = False  # see ShardWatermark
    poll_timeout: float = 0.2
    max_records_per_call: int = 50_000
    max_seconds_per_call: float = 1.0
    # Event time: None takes the Kafka record timestamp; else decode() returns it.
    decode: Callable[[bytes], tuple[Any, int | None]] | None = None
    # Readers; each serves a share of the partitions with one combined watermark.
    shards: int = 1
    extra_consumer_config: dict = field(default_factory=dict)


def _consumer(config: SourceConfig):
    from kafka import KafkaConsumer

    return KafkaConsumer(
        group_id=config.group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # Connectors write in transactions: never read what an aborted transaction left in the log.
        isolation_level="read_committed",
        max_poll_records=min(config.max_records_per_call, 5000),
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=8_388_608,
        **config.client,
        **config.extra_consumer_config,
    )


def resume_point(consumer, tp, config: SourceConfig) -> tuple[int, int | None]:
    """Start offset of a partition and, when resuming from a commit, the watermark recorded with it."""
    start = config.start
    if start == "committed":
        committed = consumer.committed(tp, metadata=True)
        if committed is not None and committed.offset >= 0:
            wm = None
            if committed.metadata:
                try:
                    wm = int(json.loads(committed.metadata)["wm"])
                except (ValueError, KeyError, TypeError):
                    wm = None
            return committed.offset, wm
        start = config.start_if_uncommitted
    if start == "earliest":
        return consumer.beginning_offsets([tp])[tp], None
    if start == "latest":
        return consumer.end_offsets([tp])[tp], None
    if start.startswith("timestamp:"):
        found = consumer.offsets_for_times({tp: int(start.split(":", 1)[1])})[tp]
        return (found.offset if found is not None else consumer.end_offsets([tp])[tp]), None
    raise ValueError(f"unknown start position {start!r}: use committed, earliest, latest or timestamp:<ms>")


class Shard(NamedTuple):
    """The partitions one reader serves, as ((topic, partition), ...)."""

    partitions: tuple


@dataclass(frozen=True)
class ShardOffsets:
    """Restriction: the next offset to read per partition, and the watermark to resume each with.

    One restriction covers all partitions of a shard. Beam runners take the minimum watermark over
    restrictions, but Prism lets one restriction's watermark run ahead while another restriction of
    the same stage has not started yet, which made the late one's records late at the next GroupByKey.
    Keeping the partitions of a shard in one restriction, with one combined watermark (the minimum of
    the partitions'), makes that impossible.
    """

    positions: tuple  # ((topic, partition, next_offset), ...)
    resume_wm: tuple = ()  # ((topic, partition, wm_ms), ...) from the committed metadata
    done: bool = False  # a checkpointed primary: nothing more to read


class ShardOffsetsTracker(RestrictionTracker):
    """Claims (topic, partition, offset) positions; splits only to checkpoint at the current positions."""

    def __init__(self, restriction: ShardOffsets):
        self._restriction = restriction
        self._next = {(t, p): o for t, p, o in restriction.positions}
        self._checkpointed = restriction.done

    def current_restriction(self):
        return self._restriction

    def try_claim(self, position) -> bool:
        topic, partition, offset = position
        if self._checkpointed:
            return False
        self._next[(topic, partition)] = offset + 1
        return True

    def try_split(self, fraction_of_remainder):
        # Only a checkpoint (fraction 0) is honoured: cutting the unread offsets of a partition in two
        # would need two readers with their own consumers and watermarks.
        if fraction_of_remainder != 0 or self._checkpointed:
            return None
        self._checkpointed = True
        primary = ShardOffsets(self._restriction.positions, self._restriction.resume_wm, done=True)
        residual = ShardOffsets(
            tuple((t, p, o) for (t, p), o in sorted(self._next.items())), self._restriction.resume_wm
        )
        return primary, residual

    def check_done(self):
        if not self._checkpointed:
            raise ValueError("an unbounded Kafka restriction can only end by a checkpoint")

    def current_progress(self):
        # Unknown, on purpose. An unbounded reader has no fraction done, and any progress returned is
        # rescaled by the SDK with its sampled output byte counts, which are NaN until the first size
        # sample lands: a runner split request in that instant crashed the bundle ("cannot convert
        # float NaN to integer"). With None the SDK assumes half an element and never touches them.
        return None

    def is_bounded(self):
        return False


class ShardWatermark(WatermarkEstimator):
    """The watermark of a shard: the minimum of its partitions' watermarks.

    Per partition: the highest event time seen minus the allowed out-of-orderness; once the partition
    has been idle for `idle_timeout`, it creeps on from its last event time at wall-clock speed (never
    jumps to now), so a replay of old data that pauses briefly does not make its next records late,
    while a quiet partition stops holding the pipeline back. A partition that never had a record since
    the start is idle at the wall clock. With `close_when_idle` (replays of finished data), an idle
    partition, whose every record has been read, creeps on from its last event time itself rather than
    from that minus the out-of-orderness: every window its data fills can close.
    State: {(topic, partition): [wm_ms, max_event_ms, last_data_s]}.
    """

    def __init__(
        self, state: dict, max_out_of_orderness: float, idle_timeout: float, close_when_idle: bool = False
    ):
        self.partitions = {tp: list(v) for tp, v in state.items()}
        self.ooo_ms = int(max_out_of_orderness * 1000)
        self.idle_timeout = idle_timeout
        self.close_when_idle = close_when_idle

    # Beam wraps the estimator in a proxy that only forwards method calls: accessors, not attributes.
    def partition_watermarks(self) -> dict:
        return {tp: v[0] for tp, v in self.partitions.items()}

    def max_event_millis(self, tp) -> int:
        return self.partitions[tp][1]

    def idle_seconds(self, tp, now: float) -> float:
        return now - self.partitions[tp][2]

    def observe(self, tp, max_event_ms: int) -> None:
        """Record the highest event time of a batch just read from partition `tp`."""
        state = self.partitions[tp]
        if max_event_ms > state[1]:
            state[1] = max_event_ms
        state[2] = time.time()

    def advance(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for state in self.partitions.values():
            candidate = state[1] - self.ooo_ms
            idle_for = now - state[2]
            if idle_for >= self.idle_timeout:
                if state[1] <= FLOOR_MS:
                    candidate = int((now - self.idle_timeout) * 1000)
                else:
                    if self.close_when_idle:
                        candidate = state[1]
                    candidate += int((idle_for - self.idle_timeout) * 1000)
            if candidate > state[0]:
                state[0] = candidate

    def watermark_millis(self) -> int:
        return min((v[0] for v in self.partitions.values()), default=FLOOR_MS)

    def observe_timestamp(self, timestamp):
        pass  # event times are observed per partition with observe()

    def current_watermark(self):
        wm = self.watermark_millis()
        return MIN_TIMESTAMP if wm <= FLOOR_MS else Timestamp(micros=wm * 1000)

    def get_estimator_state(self):
        return {tp: tuple(v) for tp, v in self.partitions.items()}


class _ReadShard(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Reads the partitions of a shard; is also its own restriction and watermark provider."""

    def __init__(self, config: SourceConfig):
        self.config = config
        self._consumer = None
        self._assigned: tuple = ()
        self._backlog: set = set()  # partitions found with unread records at the last check
        self._backlog_checked = 0.0
        self._backlog_asked: set = set()  # the partitions that check was about
        self._lag_reported = 0.0

    # -- restriction: per partition, the offsets from the resume point onwards -----------------------
    def initial_restriction(self, element: Shard):
        from kafka import TopicPartition

        consumer = _consumer(self.config)
        positions, resume = [], []
        try:
            for topic, partition in element.partitions:
                offset, wm = resume_point(consumer, TopicPartition(topic, partition), self.config)
                positions.append((topic, partition, offset))
                if wm is not None:
                    resume.append((topic, partition, wm))
        finally:
            consumer.close()
        return ShardOffsets(tuple(positions), tuple(resume))

    def create_tracker(self, restriction):
        return ShardOffsetsTracker(restriction)

    def split(self, element, restriction):
        yield restriction

    def restriction_size(self, element, restriction):
        return 1  # unknown backlog

    def truncate(self, element, restriction):
        return None  # on drain, stop reading: an unbounded partition has no end to reach

    # -- watermark ----------------------------------------------------------------------------------
    def initial_estimator_state(self, element, restriction):
        resume = {(t, p): wm for t, p, wm in restriction.resume_wm}
        now = time.time()
        return {
            (t, p): (resume.get((t, p), FLOOR_MS), resume.get((t, p), FLOOR_MS), now)
            for t, p, _ in restriction.positions
        }

    def create_watermark_estimator(self, state):
        return ShardWatermark(
            state, self.config.max_out_of_orderness, self.config.idle_timeout, self.config.close_when_idle
        )

    # -- reading ------------------------------------------------------------------------------------
    def teardown(self):
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _consumer_at(self, positions: tuple):
        from kafka import TopicPartition

        tps = tuple(TopicPartition(t, p) for t, p, _ in positions)
        if self._consumer is None:
            self._consumer = _consumer(self.config)
        if tps != self._assigned:
            self._consumer.assign(list(tps))
            self._assigned = tps
        for (_, _, offset), tp in zip(positions, tps, strict=True):
            if self._consumer.position(tp) != offset:
                self._consumer.seek(tp, offset)
        return self._consumer

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: Shard,
        tracker=beam.DoFn.RestrictionParam(),
        watermark=beam.DoFn.WatermarkEstimatorParam(),
    ):
        config = self.config
        restriction = tracker.current_restriction()
        if restriction.done:
            return
        consumer = self._consumer_at(restriction.positions)
        decode = config.decode
        part_wm = watermark.partition_watermarks()  # only advance() below moves them
        lateness_ms = int(config.allowed_lateness * 1000)
        batch_max = dict(part_wm)
        next_offsets = {}
        emitted = 0
        deadline = time.monotonic() + config.max_seconds_per_call
        while emitted < config.max_records_per_call and time.monotonic() < deadline:
            polled = consumer.poll(timeout_ms=int(config.poll_timeout * 1000), max_records=5000)
            if not polled:
                break
            for tp, batch in polled.items():
                key = (tp.topic, tp.partition)
                wm_ms = part_wm[key]
                wm_ts = Timestamp(micros=max(wm_ms, 0) * 1000)
                too_late_ms = wm_ms - lateness_ms
                high = batch_max[key]
                late = 0
                # One claim per batch: the whole batch is emitted in this call (claiming per record
                # would take the tracker's lock per record).
                if not tracker.try_claim((tp.topic, tp.partition, batch[-1].offset)):
                    return
                for record in batch:
                    value, event_ms = record.value, record.timestamp
                    if decode is not None:
                        try:
                            value, decoded_ms = decode(record.value)
                            if decoded_ms is not None:
                                event_ms = decoded_ms
                        except Exception as exc:  # a record that cannot be decoded is a dead letter
                            DECODE_ERRORS.labels(tp.topic).inc()
                            yield beam.pvalue.TaggedOutput(
                                DEAD_LETTER,
                                beam.window.TimestampedValue(
                                    decode_failure(record, exc),
                                    wm_ts,
                                ),
                            )
                            continue
                    out = KafkaRecord(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        value,
                        event_ms,
                        tuple(record.headers or ()),
                    )
                    if event_ms < too_late_ms:
                        late += 1
                        # The raw bytes go to the dead-letter topic, not the decoded value.
                        late_record = out._replace(value=record.value)
                        yield beam.pvalue.TaggedOutput(LATE, beam.window.TimestampedValue(late_record, wm_ts))
                        continue
                    if event_ms > high:
                        high = event_ms
                    # A WindowedValue skips the per-record TimestampedValue conversion; the input
                    # (a Shard) is in the global window.
                    yield WindowedValue(out, Timestamp(micros=event_ms * 1000), GLOBAL_WINDOWS)
                batch_max[key] = high
                next_offsets[key] = batch[-1].offset + 1
                emitted += len(batch)
                RECORDS_CONSUMED.labels(tp.topic).inc(len(batch))
                if late:
                    LATE_RECORDS.labels(tp.topic).inc(late)
        for key in next_offsets:
            watermark.observe(key, batch_max[key])
        for key in self._waiting(consumer, watermark, next_offsets):
            watermark.observe(key, FLOOR_MS)  # records are waiting: not idle, only not fetched yet
        watermark.advance()
        self._report_lag(consumer)
        for (topic, partition), wm in watermark.partition_watermarks().items():
            SOURCE_WATERMARK.labels(topic, str(partition)).set(max(wm, 0) / 1000)
        for (topic, partition), offset in next_offsets.items():
            marker_ms = max(watermark.max_event_millis((topic, partition)), part_wm[(topic, partition)])
            yield beam.pvalue.TaggedOutput(
                PROGRESS,
                beam.window.TimestampedValue(
                    Progress(topic, partition, offset, marker_ms, part_wm[(topic, partition)]),
                    Timestamp(micros=marker_ms * 1000),
                ),
            )
        # Checkpoint: the runner keeps what was emitted and the watermark, then calls again.
        tracker.defer_remainder(Duration.of(0 if emitted else config.poll_timeout))

    def _report_lag(self, consumer) -> None:
        now = time.monotonic()
        if now - self._lag_reported < LAG_EVERY_S:
            return
        self._lag_reported = now
        assigned = list(consumer.assignment())
        for tp, end in consumer.end_offsets(assigned).items():
            CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(end - consumer.position(tp), 0))

    def _waiting(self, consumer, watermark, read: dict) -> set:
        """Partitions that read nothing in this call and look idle, but still have unread records.

        A partition with a backlog the consumer has not fetched yet (the first fetches serve some
        partitions before others) must not count as idle: its watermark would jump ahead and its
        records would then be late. End offsets are asked for at most once a second.
        """
        from kafka import TopicPartition

        now = time.time()
        idle = [
            key
            for key in watermark.partition_watermarks()
            if key not in read and watermark.idle_seconds(key, now) >= self.config.idle_timeout
        ]
        if not idle:
            return set()
        # The cached answer only holds for the partitions it was asked about: a partition that turned
        # idle since is checked at once (taking the cache for it made its watermark jump over its backlog).
        if now - self._backlog_checked >= 1.0 or not set(idle) <= self._backlog_asked:
            tps = [TopicPartition(t, p) for t, p in idle]
            ends = consumer.end_offsets(tps)
            self._backlog = {(tp.topic, tp.partition) for tp in tps if consumer.position(tp) < ends[tp]}
            self._backlog_asked = set(idle)
            self._backlog_checked = now
        return self._backlog & set(idle)


def _reason(exc: Exception) -> str:
    """A decoder's exception may name its dead-letter reason (e.g. normalise-error)."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else "decode-error"


def _errors(exc: Exception) -> list[str]:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        return errors
    return [f"{type(exc).__name__}: {exc}"]


def decode_failure(record, exc: Exception) -> dict:
    """The dead letter of a record its decoder rejected: its reason and errors, else the exception."""
    return _dead_letter(record, _reason(exc), _errors(exc))


def _dead_letter(record, reason: str, errors: list[str]) -> dict:
    from tocsin.serde.dead_letter import dead_letter

    return dead_letter(
        stage="pipeline.source",
        reason=reason,
        errors=errors,
        source=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value,
    )


class _ListPartitions(beam.DoFn):
    """Deal the partitions of the topics to `shards` readers (one by default: see ShardOffsets)."""

    def __init__(self, config: SourceConfig):
        self.config = config

    def process(self, _):
        consumer = _consumer(self.config)
        try:
            partitions = []
            for topic in self.config.topics:
                found = consumer.partitions_for_topic(topic)
                if not found:
                    raise ValueError(f"topic {topic} does not exist (create it with `tocsin topics create`)")
                partitions += [(topic, p) for p in sorted(found)]
        finally:
            consumer.close()
        shards = max(1, min(self.config.shards, len(partitions)))
        for i in range(shards):
            yield Shard(tuple(partitions[i::shards]))


class ReadFromKafka(beam.PTransform):
    """Read topics as an unbounded, event-timed PCollection of KafkaRecord.

    Outputs (a DoOutputsTuple): main (records), `progress` (offset markers for CommitWhenDurable),
    `dead_letter` (records that failed to decode, as DeadLetter dicts), `late` (records older than
    their partition's watermark).
    """

    def __init__(self, config: SourceConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin):
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(_ListPartitions(self.config))
            | "ReadShards"
            >> beam.ParDo(_ReadShard(self.config)).with_outputs(PROGRESS, DEAD_LETTER, LATE, main="records")
        )
