"""The reference streaming job: read topics, count records per key in event-time windows, write counts.

It is the smallest pipeline that exercises everything tocsin's real pipelines stand on: the Kafka
source with exact per-record lateness and per-partition watermarks, event-time windows (fixed or
sliding) firing while the stream runs, the idempotent Kafka sink, dead letters for late and
undecodable records, and offsets committed only once their windows are durable. Output records are
keyed `<key>@<window start ms>` so a re-emitted window replaces the earlier value (JSON value: key,
window_start, window_end, count).

Counting starts in the reader (`SliceCounts`): each read call's records become one count per key and
time slice (the window's period), so a sliding window is
assembled from the slices it covers (as Flink's sliced windows are) instead of every record being
assigned to every window it falls in.

    tocsin pipeline window-count --input-topic in --output-topic out --window 1h/5m
"""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.transforms import window

from tocsin.pipelines.io.commit import CommitWhenDurable, committed_floor
from tocsin.pipelines.io.dead_letters import EncodeDeadLetters, LateToDeadLetter
from tocsin.pipelines.io.decoders import AvroWithEventTime, JsonWithEventTime
from tocsin.pipelines.io.kafka_sink import OutRecord, WriteToKafka
from tocsin.pipelines.io.kafka_source import (
    DEAD_LETTER,
    LATE,
    PROGRESS,
    Combiner,
    ReadFromKafka,
    SourceConfig,
)
from tocsin.pipelines.options import JobArgumentParser, job_options, parse_job_args, serve_job_metrics
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.telemetry.logging import get_logger


def slice_ms(spec: WindowSpec) -> int:
    """The longest time slice whose boundaries are boundaries of every window of the spec: the period
    (a window's size is a multiple of its period)."""
    return spec.period_s * 1000


class SliceCounts(Combiner):
    """Counts a read call's records per key and time slice; each count is stamped with its slice's
    last millisecond, which lies in exactly the windows of the slice's records."""

    def __init__(self, slice_ms: int):
        self.slice_ms = slice_ms
        self.counts: dict = {}

    def add(self, key, value, event_ms):
        at = (key, event_ms // self.slice_ms)
        self.counts[at] = self.counts.get(at, 0) + 1

    def drain(self):
        counts, self.counts = self.counts, {}
        for (key, n), count in counts.items():
            yield ((key or b"").decode("utf-8", "replace"), count), (n + 1) * self.slice_ms - 1


class SliceCountsFactory:
    """Picklable factory the source calls once per read call."""

    def __init__(self, spec: WindowSpec):
        self.slice_ms = slice_ms(spec)

    def __call__(self) -> SliceCounts:
        return SliceCounts(self.slice_ms)


def windows_for(spec: WindowSpec):
    if spec.size_s == spec.period_s:
        return window.FixedWindows(spec.size_s)
    return window.SlidingWindows(spec.size_s, spec.period_s)


class CountPerKeyInWindows(beam.PTransform):
    """(key, count) slice counts -> OutRecord: the number of records per key in each event-time window."""

    def __init__(self, spec: WindowSpec, emit_after_ms: int | None = None):
        super().__init__()
        self.spec = spec
        self.emit_after_ms = emit_after_ms

    def expand(self, counts):
        return (
            counts
            | "Window" >> beam.WindowInto(windows_for(self.spec))
            | "Count" >> beam.CombinePerKey(sum)
            | "Format" >> beam.ParDo(_FormatCount(self.emit_after_ms))
        )


class _FormatCount(beam.DoFn):
    def __init__(self, emit_after_ms: int | None = None):
        self.emit_after_ms = emit_after_ms

    def process(self, kv, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, count = kv
        start_ms, end_ms = win.start.micros // 1000, win.end.micros // 1000
        if self.emit_after_ms is not None and end_ms <= self.emit_after_ms:
            return  # final and written before a restart (see commit.py)
        value = {
            "key": key,
            "window_start": start_ms,
            "window_end": end_ms,
            "count": count,
            "pane": pane.timing if pane else None,
        }
        yield OutRecord(f"{key}@{start_ms}".encode(), json.dumps(value, sort_keys=True).encode())


def default_group_id(output_topic: str) -> str:
    return f"tocsin.window-count.{output_topic}"


def build(
    pipeline,
    opts,
    client: dict,
    input_topics: list[str],
    output_topic: str,
    spec: WindowSpec,
    decode=None,
    emit_after_ms: int | None = None,
):
    config = SourceConfig(
        decode=decode,
        client=client,
        topics=tuple(input_topics),
        group_id=opts.group_id or default_group_id(output_topic),
        start=opts.start,
        idle_timeout=opts.idle_timeout,
        close_when_idle=opts.close_when_idle,
        close_horizon=spec.size_s,  # every window holding data closes once the input is read
        max_out_of_orderness=opts.max_out_of_orderness,
        shards=opts.source_shards,
        combine=SliceCountsFactory(spec),
    )
    read = pipeline | "Read" >> ReadFromKafka(config)
    written = (
        read.records
        | "CountPerKey" >> CountPerKeyInWindows(spec, emit_after_ms)
        | "WriteCounts" >> WriteToKafka(client, output_topic)
    )
    _ = (
        (read[LATE] | "Late" >> LateToDeadLetter("pipeline.window-count"), read[DEAD_LETTER])
        | "DeadLetters" >> beam.Flatten()
        | "EncodeDeadLetters" >> EncodeDeadLetters(opts.dead_letter_topic)
        | "WriteDeadLetters" >> WriteToKafka(client, opts.dead_letter_topic)
    )
    _ = (read[PROGRESS], written) | "CommitOffsets" >> CommitWhenDurable(
        client, config.group_id, spec.size_s, spec.period_s
    )


def run(argv: list[str] | None = None) -> None:
    parser = JobArgumentParser(prog="tocsin pipeline window-count", description=__doc__.split("\n")[0])
    parser.add_argument("--input-topic", action="append", required=True, dest="input_topics")
    parser.add_argument("--output-topic", required=True)
    parser.add_argument(
        "--window",
        default="10s",
        help="SIZE/PERIOD sliding window (e.g. 1h/5m), or SIZE alone for fixed windows (default 10s)",
    )
    parser.add_argument(
        "--value-schema",
        default=None,
        help="Decode values as this tocsin Avro record (e.g. IncidentReport); undecodable "
        "records go to the dead-letter topic",
    )
    parser.add_argument(
        "--value-format",
        choices=["raw", "json"],
        default="raw",
        help="json: decode values as JSON objects (undecodable ones are dead letters); with "
        "--event-time-field, take event time from that field",
    )
    parser.add_argument(
        "--event-time-field",
        default=None,
        help="With --value-schema or --value-format json: take event time (epoch ms) from this field "
        "instead of the Kafka timestamp",
    )
    known, beam_args = parse_job_args(parser, argv)
    try:
        spec = WindowSpec.parse(known.window)
    except ValueError as error:
        parser.error(str(error))
    options, opts, client = job_options(parser, beam_args)
    port = serve_job_metrics(parser, opts)
    log = get_logger(stage="window-count")
    log.info(
        "starting",
        inputs=known.input_topics,
        output=known.output_topic,
        window=spec.label(),
        metrics_port=port,
        runner=options.get_all_options()["runner"],
    )
    decode = None
    if known.value_schema:
        decode = AvroWithEventTime(known.value_schema, known.event_time_field)
    elif known.value_format == "json":
        decode = JsonWithEventTime(known.event_time_field)
    group_id = opts.group_id or default_group_id(known.output_topic)
    emit_after = committed_floor(opts, client, group_id, known.input_topics)
    with beam.Pipeline(options=options) as pipeline:
        build(
            pipeline,
            opts,
            client,
            known.input_topics,
            known.output_topic,
            spec,
            decode,
            emit_after,
        )


if __name__ == "__main__":
    run()
