"""ReadShard: the splittable DoFn that reads a shard's partitions (the reader loop).

It is its own restriction provider (source_restriction.py) and watermark estimator provider
(source_estimator.py); the watermark and lateness policy it applies is pure (source_watermark.py), and
this shell is where the wall clock is read. Each call reads for up to `max_seconds_per_call`, emits what
it read, moves the watermark, emits progress markers and checkpoints.
"""

from __future__ import annotations

import time

import apache_beam as beam
from apache_beam.transforms.core import RestrictionProvider, WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Duration, Timestamp
from apache_beam.utils.windowed_value import WindowedValue
from confluent_kafka import KafkaException

from tocsin.pipelines.io.consumer import PartitionConsumer
from tocsin.pipelines.io.counters import DECODE_ERRORS, LATE_RECORDS, RECORDS_CONSUMED
from tocsin.pipelines.io.source_config import Combiner, SourceConfig
from tocsin.pipelines.io.source_dead_letters import decode_failure
from tocsin.pipelines.io.source_estimator import ShardWatermark
from tocsin.pipelines.io.source_partitions import open_consumer
from tocsin.pipelines.io.source_records import (
    DEAD_LETTER,
    GLOBAL_WINDOWS,
    LATE,
    PROGRESS,
    Progress,
    drained,
    record_of,
)
from tocsin.pipelines.io.source_restriction import Shard, ShardOffsets, ShardOffsetsTracker
from tocsin.pipelines.io.source_watermark import FLOOR_MS, RecordGate, initial_states
from tocsin.serde.registry_client import RegistryError
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import gauge

SOURCE_WATERMARK = gauge(
    "tocsin_source_watermark_seconds", "Event-time watermark of a partition", ["topic", "partition"]
)
CONSUMER_LAG = gauge(
    "tocsin_source_consumer_lag_records",
    "Records of a partition not read yet (end offset - position)",
    ["topic", "partition"],
)
LAG_EVERY_S = 5.0  # end offsets are a broker round trip: asked for at most this often
BACKLOG_EVERY_S = 1.0  # the same for the backlog check of idle-looking partitions


class ReadShard(beam.DoFn, RestrictionProvider, WatermarkEstimatorProvider):
    """Reads the partitions of a shard; is also its own restriction and watermark provider."""

    def __init__(self, config: SourceConfig):
        self.config = config
        self.policy = config.watermark_policy()
        self._consumer: PartitionConsumer | None = None
        self._positions: dict = {}  # (topic, partition) -> the next offset the consumer will return
        # (topic, partition) -> how far the consumer has fetched: past the last record returned, and
        # past transaction markers once it reported the partition's end
        self._fetched: dict = {}
        self._backlog: set = set()  # partitions found with unread records at the last check
        self._backlog_checked = 0.0
        self._backlog_asked: set = set()  # the partitions that check was about
        self._lag_reported = 0.0
        self._unanswered = False  # the last end-offsets request failed (the broker not answering)

    # -- restriction: per partition, the offsets from the resume point onwards -----------------------
    def initial_restriction(self, element: Shard):
        consumer = open_consumer(self.config)
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
        states = initial_states(
            ((t, p) for t, p, _ in restriction.positions),
            {(t, p): wm for t, p, wm in restriction.resume_wm},
            time.time(),
        )
        return {tp: tuple(state) for tp, state in states.items()}  # plain tuples for the state coder

    def create_watermark_estimator(self, state):
        return ShardWatermark(state, self.policy)

    # -- reading ------------------------------------------------------------------------------------
    def teardown(self):
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _consumer_at(self, positions: tuple) -> PartitionConsumer:
        wanted = {(t, p): o for t, p, o in positions}
        if self._consumer is None:
            self._consumer = open_consumer(self.config)
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
        # Each partition's watermark as it stands at each record (see RecordGate).
        gates = {tp: RecordGate(state, self.policy) for tp, state in watermark.partition_states().items()}
        read_from = {tp: gate.watermark_ms for tp, gate in gates.items()}  # what the call's first record met
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
                gate = gates[key]
                admit = gate.admit  # bound once per batch: it runs per record
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
                        except RegistryError:
                            # The registry is down, not the record at fault: fail the bundle (the runner
                            # retries it) rather than dead-letter records that will read once it is back.
                            raise
                        except Exception as exc:  # a record that cannot be decoded is a dead letter
                            DECODE_ERRORS.labels(topic).inc()
                            yield beam.pvalue.TaggedOutput(
                                DEAD_LETTER,
                                beam.window.TimestampedValue(
                                    decode_failure(record_of(message, raw, event_ms), exc),
                                    Timestamp(micros=max(gate.watermark_ms, 0) * 1000),
                                ),
                            )
                            continue
                    if not admit(event_ms):
                        late += 1
                        # The raw bytes go to the dead-letter topic, not the decoded value.
                        yield beam.pvalue.TaggedOutput(
                            LATE,
                            beam.window.TimestampedValue(
                                record_of(message, raw, event_ms),
                                Timestamp(micros=max(gate.watermark_ms, 0) * 1000),
                            ),
                        )
                        continue
                    if combiner is not None:
                        combiner.add(message.key(), value, event_ms)
                    else:
                        # A WindowedValue skips the per-record TimestampedValue conversion; the input
                        # (a Shard) is in the global window.
                        yield WindowedValue(
                            record_of(message, value, event_ms),
                            Timestamp(micros=event_ms * 1000),
                            GLOBAL_WINDOWS,
                        )
                next_offsets[key] = self._positions[key] = batch[-1].offset() + 1
                self._fetched[key] = max(self._fetched.get(key, 0), next_offsets[key])
                emitted += len(batch)
                RECORDS_CONSUMED.labels(topic).inc(len(batch))
                if late:
                    LATE_RECORDS.labels(topic).inc(late)
        yield from drained(combiner)
        now = time.time()  # one reading of the wall clock for the whole watermark step
        for key in next_offsets:
            watermark.observe(key, gates[key].max_event_ms, now)
        for key in self._waiting(consumer, watermark, next_offsets, now):
            watermark.observe(key, FLOOR_MS, now)  # records are waiting: not idle, only not fetched yet
        watermark.advance(now)
        self._report_lag(consumer)
        for (topic, partition), wm in watermark.partition_watermarks().items():
            SOURCE_WATERMARK.labels(topic, str(partition)).set(max(wm, 0) / 1000)
        for (topic, partition), offset in next_offsets.items():
            gate = gates[(topic, partition)]
            # The partition's latest event time, as observed just above (the gate started from it).
            marker_ms = max(gate.max_event_ms, read_from[(topic, partition)])
            # A restart at `offset` resumes with the watermark the next record would have met.
            yield beam.pvalue.TaggedOutput(
                PROGRESS,
                beam.window.TimestampedValue(
                    Progress(topic, partition, offset, marker_ms, gate.watermark_ms),
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
        ends = self._end_offsets(consumer, self._positions)
        for (topic, partition), end in (ends or {}).items():
            lag = max(end - self._fetched.get((topic, partition), 0), 0)
            CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    def _waiting(self, consumer, watermark, read: dict, now: float) -> set:
        """Partitions that read nothing in this call and look idle, but still have unread records.

        A partition with a backlog the consumer has not fetched yet (the first fetches serve some
        partitions before others) must not count as idle: its watermark would jump ahead and its
        records would then be late. End offsets are asked for at most once a second.
        """
        idle = [key for key in watermark.idle(now) if key not in read]
        if not idle:
            return set()
        # The cached answer only holds for the partitions it was asked about: a partition that turned
        # idle since is checked at once (taking the cache for it made its watermark jump over its backlog).
        if now - self._backlog_checked >= BACKLOG_EVERY_S or not set(idle) <= self._backlog_asked:
            ends = self._end_offsets(consumer, idle)
            if ends is None:  # unknown whether records wait: none counts as idle; asked again next call
                return set(idle)
            self._backlog = {tp for tp in idle if self._fetched.get(tp, 0) < ends[tp]}
            self._backlog_asked = set(idle)
            self._backlog_checked = now
        return self._backlog & set(idle)

    def _end_offsets(self, consumer: PartitionConsumer, partitions) -> dict | None:
        """End offsets of the partitions, or None while the broker does not answer for them.

        A broker restarting (or a partition's leader moving) answers "unknown partition", or not at all.
        Raised here, that failed the read bundle, and Prism, which does not retry a bundle, failed the
        job: every streaming job ended when its broker restarted. The reader only asks for end offsets
        to report the lag and to tell an idle partition from one whose records it has not fetched yet
        (`_waiting`); with no answer, it treats the partitions as waiting, so their watermark holds
        (no window closes over records it could not see) until the broker answers again.
        """
        try:
            ends = consumer.end_offsets(partitions)
        except KafkaException as error:
            if not self._unanswered:
                get_logger(stage="source").warning("end offsets not answered, retrying", error=str(error))
            self._unanswered = True
            return None
        if self._unanswered:
            get_logger(stage="source").info("end offsets answered again")
        self._unanswered = False
        return ends
