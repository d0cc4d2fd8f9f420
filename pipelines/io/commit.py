"""CommitWhenDurable: commit source offsets only once the sink has made their results durable.

Input: the source's `progress` markers and the sink's (empty) output. Flattening the two makes this
stage's input watermark the minimum of the source's and the sink's: an event-time timer set at time T
fires only once the sink has finished (flushed, acknowledged) every bundle holding panes up to T.

Windows are sliding (size S, period P; fixed when S = P) with allowed lateness L, so window ends are
multiples of P. When the timer fires at F, every window ending at or before R (the last boundary <= F - L)
is final and durable. A marker says "records of this partition below offset O have event time <= m, and
records from O on were read at partition watermark w or later". The commit for a partition is the latest
marker whose records all precede every window ending after R (m < R + P - S): offset O, with metadata
{"wm": w, "emit_after": R}. On restart the source resumes at O with watermark w, so every record it
counted after O is on time again, each window ending after R is rebuilt whole and re-emitted under the
same key (idempotent), and the pipeline does not re-emit windows ending at or before R (`resume_floor`):
they were final before the restart. Nothing is lost and no window is half counted.

All partitions are committed by one stateful step (one state key), but only those with a marker ready
are committed at a timer: the others keep the R of their own last commit, so the partitions' R can
differ, and a restart takes the largest (`resume_floor`).
"""

from __future__ import annotations

import json
import math
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows
from apache_beam.typehints import Any as AnyHint
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from tocsin.pipelines.io.clients import when_broker_answers
from tocsin.pipelines.io.counters import OFFSETS_COMMITTED
from tocsin.pipelines.options import when_kafka_answers
from tocsin.telemetry.metrics import gauge

COMMITTED_OFFSET = gauge(
    "tocsin_source_committed_offset", "Last offset committed for a partition", ["topic", "partition"]
)


def window_boundary_after(event_ms: int, size_ms: int, offset_ms: int = 0) -> int:
    """End of the fixed window holding `event_ms` (windows [offset + k*size, offset + (k+1)*size))."""
    return ((event_ms - offset_ms) // size_ms + 1) * size_ms + offset_ms


def boundary_at_or_before(t_ms: int, period_ms: int) -> int:
    return (t_ms // period_ms) * period_ms


def committable_at(max_event_ms: int, size_ms: int, period_ms: int, lateness_ms: int) -> int:
    """The earliest timer time at which a marker with this max event time can be committed."""
    return window_boundary_after(max_event_ms + size_ms - period_ms, period_ms) + lateness_ms


def choose_commits(markers: list, fired_ms: int, size_ms: int, period_ms: int, lateness_ms: int):
    """Pure core of the commit: (commits {(topic, partition): marker}, emit_after R, markers kept)."""
    emit_after = boundary_at_or_before(fired_ms - lateness_ms, period_ms)
    limit = emit_after + period_ms - size_ms
    commits: dict = {}
    for marker in markers:
        if marker.max_event_ms < limit:
            key = (marker.topic, marker.partition)
            if key not in commits or marker.next_offset > commits[key].next_offset:
                commits[key] = marker
    kept = [
        m
        for m in markers
        if (m.topic, m.partition) not in commits
        or m.next_offset > commits[(m.topic, m.partition)].next_offset
    ]
    return commits, emit_after, kept


class _Commit(beam.DoFn):
    PENDING = ReadModifyWriteStateSpec("pending", PickleCoder())
    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def __init__(self, client: dict, group_id: str, size_ms: int, period_ms: int, lateness_ms: int):
        self.client = client
        self.group_id = group_id
        self.size_ms = size_ms
        self.period_ms = period_ms
        self.lateness_ms = lateness_ms
        self._consumer = None

    def setup(self):
        # Retried while the broker does not answer: a runner sets a DoFn up mid-stream too (clients.py).
        self._consumer = when_broker_answers(
            lambda: KafkaConsumer(group_id=self.group_id, enable_auto_commit=False, **self.client),
            f"the committer of group {self.group_id}",
        )

    def teardown(self):
        if self._consumer is not None:
            self._consumer.close()

    def _due(self, marker) -> int:
        return committable_at(marker.max_event_ms, self.size_ms, self.period_ms, self.lateness_ms)

    def process(self, element, pending=beam.DoFn.StateParam(PENDING), due=beam.DoFn.TimerParam(DUE)):
        _key, progress = element
        if progress is None:
            return
        markers = pending.read() or []
        markers.append(progress)
        pending.write(markers)
        due.set(Timestamp(micros=min(self._due(m) for m in markers) * 1000))

    @on_timer(DUE)
    def on_due(
        self,
        fired=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ):

        markers = pending.read() or []
        commits, emit_after, kept = choose_commits(
            markers, fired.micros // 1000, self.size_ms, self.period_ms, self.lateness_ms
        )
        if commits:
            offsets = {
                TopicPartition(m.topic, m.partition): OffsetAndMetadata(
                    m.next_offset, json.dumps({"wm": m.watermark_ms, "emit_after": emit_after}), -1
                )
                for m in commits.values()
            }
            # Retried while the broker does not answer: kafka-python's commit raised on a connection a
            # restarting broker reset, and failed the job (clients.py). The same offsets again: harmless.
            when_broker_answers(lambda: self._consumer.commit(offsets), f"the commit of {self.group_id}")
            for m in commits.values():
                OFFSETS_COMMITTED.labels(m.topic).inc()
                COMMITTED_OFFSET.labels(m.topic, str(m.partition)).set(m.next_offset)
        pending.write(kept)
        if kept:
            due.set(Timestamp(micros=min(self._due(m) for m in kept) * 1000))


class CommitWhenDurable(beam.PTransform):
    """Commit offsets of `progress` markers once `durable` (a sink's output) has passed their windows.

    With several window specs, pass the largest size and the greatest common divisor of the periods:
    the commit is then safe for every spec.
    """

    def __init__(
        self,
        client: dict,
        group_id: str,
        window_size_s: float,
        window_period_s: float | None = None,
        allowed_lateness_s: float = 0.0,
    ):
        super().__init__()
        self.client = client
        self.group_id = group_id
        self.size_ms = int(window_size_s * 1000)
        self.period_ms = int((window_period_s or window_size_s) * 1000)
        self.lateness_ms = int(allowed_lateness_s * 1000)
        if self.size_ms % self.period_ms:
            raise ValueError("the window size must be a multiple of the period")

    @classmethod
    def for_windows(cls, client: dict, group_id: str, windows, allowed_lateness_s: float = 0.0):
        """For several (size_s, period_s) window specs at once."""
        size = max(w[0] for w in windows)
        period = math.gcd(*(int(w[1]) for w in windows))
        return cls(client, group_id, size, period, allowed_lateness_s)

    def expand(self, inputs):
        progress, durable = inputs
        # One key: all partitions commit together with one emit_after.
        keyed = progress | "Key" >> beam.Map(lambda p: ("", p)).with_output_types(Tuple[str, AnyHint])
        done = (
            durable
            | "Global" >> beam.WindowInto(GlobalWindows())
            | "AsNoMarker" >> beam.Map(lambda _: ("", None)).with_output_types(Tuple[str, AnyHint])
        )
        return (
            (keyed, done)
            | "WithSinkWatermark" >> beam.Flatten().with_output_types(Tuple[str, Any])
            | "Commit"
            >> beam.ParDo(_Commit(self.client, self.group_id, self.size_ms, self.period_ms, self.lateness_ms))
        )


def resume_floor(client: dict, group_id: str, topics) -> int | None:
    """The `emit_after` of the group's last commit (the largest over partitions), or None if none yet.

    Windows ending at or before it were final and durable before the restart: the pipeline must not
    emit them again from the partial input it re-reads.
    """

    consumer = KafkaConsumer(group_id=group_id, enable_auto_commit=False, **client)
    try:
        floors = []
        for topic in topics:
            for partition in sorted(consumer.partitions_for_topic(topic) or ()):
                committed = consumer.committed(TopicPartition(topic, partition), metadata=True)
                if committed is None or committed.offset < 0 or not committed.metadata:
                    continue
                try:
                    floors.append(int(json.loads(committed.metadata)["emit_after"]))
                except (ValueError, KeyError, TypeError):
                    continue
        # The largest, not the smallest: a timer commits only the partitions with a marker ready, so a
        # partition can keep an older, smaller R while another moved on to offset O with R' > R. Each
        # R was true when written (windows ending by it were durable), so the largest holds; and the
        # records below that other partition's O lie in windows ending by R', which a restart cannot
        # rebuild whole: with the smallest floor it re-emitted the windows ending in (R, R'] without
        # them, undercounted (tests/faults/test_kills_indicators.py: a week of Ethiopia with 1 event of 2).
        return max(floors) if floors else None
    finally:
        consumer.close()


def committed_floor(opts, client: dict, group_id: str, topics) -> int | None:
    """The emit_after of the group's last commit when the job resumes from it (`--start committed`),
    read once the broker answers (resume_floor); None for any other start."""
    if opts.start != "committed":
        return None
    return when_kafka_answers(
        client, opts.broker_wait, lambda: resume_floor(client, group_id, topics), "the group's last commit"
    )
