"""ReadFromKafka: an unbounded Kafka source for Beam pipelines, as a Python splittable DoFn.

Each shard (one by default) reads its partitions with manual assignment (consumer.py; no group
rebalancing: the runner decides where work runs), in one restriction. Each partition has its own
watermark: the highest event time seen minus the allowed out-of-orderness; once the partition has been
idle for `idle_timeout` it moves on with the wall clock, so an idle partition never stalls the pipeline.
The shard reports the minimum.

Lateness is decided per record, exactly: a record is late when its event time is behind its
partition's watermark as it stands at that record (moved on by every earlier record of the partition,
not once per read call), minus the allowed lateness. Late records leave on the `late` output (to the
dead-letter topic), never silently; every other record reaches windows that are still open at every
runner, since the runner's watermark is never ahead of a partition's. The outcome for a record thus
depends only on the records before it in its partition (and the watermark a restart resumes with),
never on how the reads happened to fall: the reference job's test computes it independently.

With a `Combiner` (config.combine), the on-time records of each read call are folded in the reader
into one element per key and time slice (in-reader combining), so the runner handles a few elements
per call rather than one per record.

Offsets are not committed here: the source emits progress markers on the `progress` output, and
`CommitWhenDurable` (commit.py) commits an offset only once the pipeline's sink has flushed every window
that records below that offset fall in. On restart the source resumes from the committed offset and
with the committed watermark, so a crash never loses input and never double counts a window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.io.iobase import RestrictionTracker, WatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from tocsin.pipelines.io.consumer import PartitionConsumer
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
    # With close_when_idle: how far past its latest event an idle, fully read partition moves at once.
    close_horizon: float = 0.0
    poll_timeout: float = 0.2
    max_records_per_call: int = 50_000
    max_seconds_per_call: float = 1.0
    # Event time: None takes the Kafka record timestamp; else decode() returns it.
    decode: Callable[[bytes], tuple[Any, int | None]] | None = None
    # Combining in the reader: a factory of Combiner (see below); None emits every record.
    combine: Callable[[], Combiner] | None = None
    # Readers; each serves a share of the partitions with one combined watermark.
    shards: int = 1


class Combiner:
    """Folds the on-time records of one read call into a few elements (in-reader combining).

    The runner then sees one element per key and time slice of a call instead of one per record: per
    record, Beam's element dispatch, window assignment and coders cost several times what reading it
    does. `add` gets each on-time record (key bytes, decoded value, event ms) in offset order; `drain`
    returns (element, timestamp ms) pairs and starts afresh. A timestamp must lie in the same windows
    as the records it stands for (a time slice that divides every window's period): the windows
    downstream then hold exactly what they would have held record by record.
    """

    def add(self, key: bytes | None, value: Any, event_ms: int) -> None:
        raise NotImplementedError

    def drain(self):
        raise NotImplementedError


def _consumer(config: SourceConfig) -> PartitionConsumer:
    return PartitionConsumer(config.client, config.group_id)


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
    partition, whose every record has been read, moves on from its latest event time plus
    `close_horizon` rather than from that minus the out-of-orderness. The reference job's horizon is
    its window size, so every window holding data closes at once; the indicator and alert jobs keep 0:
    the windows after the end of a replay's data would hold less only because the data ends, and
    deciding them would resolve alerts the data never resolved.
    State: {(topic, partition): [wm_ms, max_event_ms, last_data_s]}.
    """

    def __init__(
        self,
        state: dict,
        max_out_of_orderness: float,
        idle_timeout: float,
        close_when_idle: bool = False,
        close_horizon: float = 0.0,
    ):
        self.partitions = {tp: list(v) for tp, v in state.items()}
        self.ooo_ms = int(max_out_of_orderness * 1000)
        self.idle_timeout = idle_timeout
        self.close_when_idle = close_when_idle
        self.horizon_ms = int(close_horizon * 1000)

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
                creep_ms = int((idle_for - self.idle_timeout) * 1000)
                if state[1] <= FLOOR_MS:
                    candidate = int((now - self.idle_timeout) * 1000)
                elif self.close_when_idle:
                    candidate = state[1] + self.horizon_ms + creep_ms
                else:
                    candidate = state[1] - self.ooo_ms + creep_ms
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
        self._consumer: PartitionConsumer | None = None
        self._positions: dict = {}  # (topic, partition) -> the next offset the consumer will return
        # (topic, partition) -> how far the consumer has fetched: past the last record returned, and
        # past transaction markers once it reported the partition's end
        self._fetched: dict = {}
        self._backlog: set = set()  # partitions found with unread records at the last check
        self._backlog_checked = 0.0
        self._backlog_asked: set = set()  # the partitions that check was about
        self._lag_reported = 0.0

    # -- restriction: per partition, the offsets from the resume point onwards -----------------------
    def initial_restriction(self, element: Shard):
        consumer = _consumer(self.config)
        positions, resume = [], []
        try:
            for topic, partition in element.partitions:
                offset, wm = consumer.resume_point(
                    (topic, partition), self.config.start, self.config.start_if_uncommitted
                )
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
        config = self.config
        return ShardWatermark(
            state,
            config.max_out_of_orderness,
            config.idle_timeout,
            config.close_when_idle,
            config.close_horizon,
        )

    # -- reading ------------------------------------------------------------------------------------
    def teardown(self):
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _consumer_at(self, positions: tuple) -> PartitionConsumer:
        wanted = {(t, p): o for t, p, o in positions}
        if self._consumer is None:
            self._consumer = _consumer(self.config)
        if wanted != self._positions:  # first call, or the runner moved the restriction elsewhere
            self._consumer.assign(wanted)
            self._positions = wanted
            self._fetched = dict(wanted)
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
        combiner = self._combiner()
        # Each partition's watermark as it stands at each record: it moves on with every record (the
        # highest event time so far minus the out-of-orderness), not once per call, so whether a record
        # is late depends on the records before it in its partition only, never on how the reads fell.
        part_wm = watermark.partition_watermarks()
        ooo_ms = int(config.max_out_of_orderness * 1000)
        lateness_ms = int(config.allowed_lateness * 1000)
        batch_max = {tp: watermark.max_event_millis(tp) for tp in part_wm}
        read_from = dict(part_wm)  # the watermark each partition's first record of this call met
        next_offsets = {}
        emitted = 0
        deadline = time.monotonic() + config.max_seconds_per_call
        while emitted < config.max_records_per_call and time.monotonic() < deadline:
            polled, at_end = consumer.read(
                min(config.max_records_per_call - emitted, 10_000), config.poll_timeout
            )
            for key, offset in at_end.items():
                self._fetched[key] = max(self._fetched.get(key, 0), offset)
            if not polled:
                if at_end:
                    continue  # only end-of-partition reports: records of others may follow
                break
            for key, batch in polled.items():
                topic, partition = key
                wm_ms, high = part_wm[key], batch_max[key]
                late = 0
                # One claim per batch: the whole batch is emitted in this call (claiming per record
                # would take the tracker's lock per record).
                if not tracker.try_claim((topic, partition, batch[-1].offset())):
                    # Checkpointed by the runner: what the claimed batches folded is still emitted.
                    yield from drained(combiner)
                    return
                for message in batch:
                    raw = message.value()
                    value, event_ms = raw, message.timestamp()[1]
                    if decode is not None:
                        try:
                            value, decoded_ms = decode(raw)
                            if decoded_ms is not None:
                                event_ms = decoded_ms
                        except Exception as exc:  # a record that cannot be decoded is a dead letter
                            DECODE_ERRORS.labels(topic).inc()
                            yield beam.pvalue.TaggedOutput(
                                DEAD_LETTER,
                                beam.window.TimestampedValue(
                                    decode_failure(_record(message, raw, event_ms), exc),
                                    Timestamp(micros=max(wm_ms, 0) * 1000),
                                ),
                            )
                            continue
                    if event_ms < wm_ms - lateness_ms:
                        late += 1
                        # The raw bytes go to the dead-letter topic, not the decoded value.
                        yield beam.pvalue.TaggedOutput(
                            LATE,
                            beam.window.TimestampedValue(
                                _record(message, raw, event_ms), Timestamp(micros=max(wm_ms, 0) * 1000)
                            ),
                        )
                        continue
                    if event_ms > high:
                        high = event_ms
                        if high - ooo_ms > wm_ms:
                            wm_ms = high - ooo_ms
                    if combiner is not None:
                        combiner.add(message.key(), value, event_ms)
                    else:
                        # A WindowedValue skips the per-record TimestampedValue conversion; the input
                        # (a Shard) is in the global window.
                        yield WindowedValue(
                            _record(message, value, event_ms),
                            Timestamp(micros=event_ms * 1000),
                            GLOBAL_WINDOWS,
                        )
                part_wm[key], batch_max[key] = wm_ms, high
                next_offsets[key] = self._positions[key] = batch[-1].offset() + 1
                self._fetched[key] = max(self._fetched.get(key, 0), next_offsets[key])
                emitted += len(batch)
                RECORDS_CONSUMED.labels(topic).inc(len(batch))
                if late:
                    LATE_RECORDS.labels(topic).inc(late)
        yield from drained(combiner)
        for key in next_offsets:
            watermark.observe(key, batch_max[key])
        for key in self._waiting(consumer, watermark, next_offsets):
            watermark.observe(key, FLOOR_MS)  # records are waiting: not idle, only not fetched yet
        watermark.advance()
        self._report_lag(consumer)
        for (topic, partition), wm in watermark.partition_watermarks().items():
            SOURCE_WATERMARK.labels(topic, str(partition)).set(max(wm, 0) / 1000)
        for (topic, partition), offset in next_offsets.items():
            key = (topic, partition)
            marker_ms = max(watermark.max_event_millis(key), read_from[key])
            # A restart at `offset` resumes with the watermark the next record would have met.
            yield beam.pvalue.TaggedOutput(
                PROGRESS,
                beam.window.TimestampedValue(
                    Progress(topic, partition, offset, marker_ms, part_wm[key]),
                    Timestamp(micros=marker_ms * 1000),
                ),
            )
        # Checkpoint: the runner keeps what was emitted and the watermark, then calls again.
        tracker.defer_remainder(Duration.of(0 if emitted else config.poll_timeout))

    def _combiner(self) -> Combiner | None:
        return None if self.config.combine is None else self.config.combine()

    def _report_lag(self, consumer: PartitionConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_reported < LAG_EVERY_S:
            return
        self._lag_reported = now
        for (topic, partition), end in consumer.end_offsets(self._positions).items():
            lag = max(end - self._fetched.get((topic, partition), 0), 0)
            CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    def _waiting(self, consumer, watermark, read: dict) -> set:
        """Partitions that read nothing in this call and look idle, but still have unread records.

        A partition with a backlog the consumer has not fetched yet (the first fetches serve some
        partitions before others) must not count as idle: its watermark would jump ahead and its
        records would then be late. End offsets are asked for at most once a second.
        """
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
            ends = consumer.end_offsets(idle)
            self._backlog = {tp for tp in idle if self._fetched.get(tp, 0) < ends[tp]}
            self._backlog_asked = set(idle)
            self._backlog_checked = now
        return self._backlog & set(idle)


def drained(combiner: Combiner | None):
    """A combiner's elements as global-window values at their timestamps (none for no combiner)."""
    if combiner is not None:
        for element, ts_ms in combiner.drain():
            yield WindowedValue(element, Timestamp(micros=ts_ms * 1000), GLOBAL_WINDOWS)


def _record(message, value, event_ms: int) -> KafkaRecord:
    return KafkaRecord(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        value,
        event_ms,
        tuple(message.headers() or ()),
    )


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
            partitions = [(topic, p) for topic in self.config.topics for p in consumer.partitions(topic)]
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
