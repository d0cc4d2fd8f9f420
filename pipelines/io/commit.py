"""CommitWhenDurable: commit source offsets only once the sink has made their results durable.

Input: the source's `progress` markers and the sink's (empty) output. Flattening the two makes this
stage's input watermark the minimum of the source's and the sink's: an event-time timer set at time T
fires only once the sink has finished (flushed, acknowledged) every bundle holding panes up to T.

A marker says "records of this partition below offset O have event time <= m". Those records belong to
fixed windows that end at or before R = the first window boundary after m; when the timer at R fires,
all those windows are out, so O is committed, with R in the commit metadata. On restart the source
resumes at O with watermark R: windows ending after R are re-read whole (their records all sit at
or after O) and re-emitted under the same keys (idempotent), and records before R were already counted
or were late anyway, so they go to the late output again. Nothing is lost, no window is half counted.
"""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.transforms.window import GlobalWindows
from apache_beam.typehints import Any as AnyHint
from apache_beam.typehints import Tuple
from apache_beam.utils.timestamp import Timestamp

from tocsin.telemetry.metrics import OFFSETS_COMMITTED, gauge

COMMITTED_OFFSET = gauge(
    "tocsin_source_committed_offset", "Last offset committed for a partition", ["topic", "partition"]
)


def window_boundary_after(event_ms: int, size_ms: int, offset_ms: int = 0) -> int:
    """End of the fixed window holding `event_ms` (windows [offset + k*size, offset + (k+1)*size))."""
    return ((event_ms - offset_ms) // size_ms + 1) * size_ms + offset_ms


class _Commit(beam.DoFn):
    PENDING = ReadModifyWriteStateSpec("pending", PickleCoder())
    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def __init__(self, client: dict, group_id: str, window_size_ms: int, window_offset_ms: int = 0):
        self.client = client
        self.group_id = group_id
        self.size_ms = window_size_ms
        self.offset_ms = window_offset_ms
        self._consumer = None

    def setup(self):
        from kafka import KafkaConsumer

        self._consumer = KafkaConsumer(group_id=self.group_id, enable_auto_commit=False, **self.client)

    def teardown(self):
        if self._consumer is not None:
            self._consumer.close()

    def process(self, element, pending=beam.DoFn.StateParam(PENDING), due=beam.DoFn.TimerParam(DUE)):
        _key, progress = element
        if progress is None:
            return
        items = pending.read() or []
        boundary = window_boundary_after(progress.max_event_ms, self.size_ms, self.offset_ms)
        items.append((boundary, progress.next_offset, progress.topic, progress.partition))
        pending.write(items)
        due.set(Timestamp(micros=min(i[0] for i in items) * 1000))

    @on_timer(DUE)
    def on_due(
        self,
        fired=beam.DoFn.TimestampParam,
        pending=beam.DoFn.StateParam(PENDING),
        due=beam.DoFn.TimerParam(DUE),
    ):
        from kafka import TopicPartition
        from kafka.structs import OffsetAndMetadata

        now_ms = fired.micros // 1000
        items = pending.read() or []
        ready = [i for i in items if i[0] <= now_ms]
        rest = [i for i in items if i[0] > now_ms]
        if ready:
            boundary, offset, topic, partition = max(ready, key=lambda i: i[1])
            resume_wm = max(i[0] for i in ready)
            tp = TopicPartition(topic, partition)
            self._consumer.commit({tp: OffsetAndMetadata(offset, json.dumps({"wm": resume_wm}), -1)})
            OFFSETS_COMMITTED.labels(topic).inc()
            COMMITTED_OFFSET.labels(topic, str(partition)).set(offset)
        pending.write(rest)
        if rest:
            due.set(Timestamp(micros=min(i[0] for i in rest) * 1000))


class CommitWhenDurable(beam.PTransform):
    """Commit offsets of `progress` markers once `durable` (a sink's output) has passed their windows."""

    def __init__(self, client: dict, group_id: str, window_size_s: float, window_offset_s: float = 0.0):
        super().__init__()
        self.client = client
        self.group_id = group_id
        self.size_ms = int(window_size_s * 1000)
        self.offset_ms = int(window_offset_s * 1000)

    def expand(self, inputs):
        progress, durable = inputs
        keyed = progress | "KeyByPartition" >> beam.Map(
            lambda p: (f"{p.topic}/{p.partition}", p)
        ).with_output_types(Tuple[str, AnyHint])
        done = (
            durable
            | "Global" >> beam.WindowInto(GlobalWindows())
            | "AsNoMarker" >> beam.Map(lambda _: ("", None)).with_output_types(Tuple[str, AnyHint])
        )
        return (
            (keyed, done)
            | "WithSinkWatermark" >> beam.Flatten().with_output_types(Tuple[str, Any])
            | "Commit" >> beam.ParDo(_Commit(self.client, self.group_id, self.size_ms, self.offset_ms))
        )
