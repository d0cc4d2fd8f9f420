"""The indicator pipeline's composite transforms: observations -> partial values -> windows -> signals.

Each stage takes plain settings in `__init__` (so tests shrink windows and lateness) and `expand` only
composes; the same transforms run in streaming (from Kafka) and batch (files, topic ranges) pipelines.
Observations are classified and folded into one partial value per window spec, place and time slice
(slices.py) as early as possible: in the Kafka source's read calls when streaming, per chunk of
observations in batch replays, per bundle otherwise. The windows then merge partials, not hits.

Windows: one or more sliding event-time windows (size, period), each firing early (after a number of hits
or processing-time seconds, if set), on time when the watermark passes the window end, and late once per
late element within the allowed lateness; panes accumulate, so each pane carries the window's whole
value and replaces the earlier one under the same signal id. Later data than that never reaches the
windows: the Kafka source sends it to the dead-letter topic (see kafka_source.py), because a runner drops
it silently. Prism (Beam 2.77) fires late panes only when a window closes (end + allowed lateness); Flink
per record. Batch replays (`final_only`) fire each window once, on time, with no early or late panes.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import NamedTuple

import apache_beam as beam
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import window

from tocsin.pipelines.indicators.aggregate import Evidence, MergeSignals, merge_into, summarise
from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.indicators.slices import SignalSlicesFactory, slices_for
from tocsin.pipelines.io.kafka_source import drained
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.telemetry.beam_metrics import pipeline_counter

SIGNALS = pipeline_counter(
    "tocsin_signals_total", "Signal panes emitted", ["pane", "country", "risk_factor"]
)  # country and risk factor for the dashboards: ~200 x 14 x 4 series at most
SUPPRESSED = pipeline_counter(
    "tocsin_signals_suppressed_total", "Panes of windows already complete before a restart, not re-emitted"
)


class PlaceKey(NamedTuple):
    indicator_id: str
    country: str
    region: str | None


# ---------------------------------------------------------------------------------------------- fold


class _FoldBundle(beam.DoFn):
    """Observations -> partials, folded over each bundle (for inputs that are not already folded)."""

    def __init__(self, factory: SignalSlicesFactory):
        self.factory = factory
        self.combiner = None

    def start_bundle(self):
        self.combiner = self.factory()

    def process(self, observation):
        self.combiner.add(None, observation)

    def finish_bundle(self):
        yield from drained(self.combiner)


# ---------------------------------------------------------------------------------------------- window


def signal_id(key: PlaceKey, start_ms: int, end_ms: int) -> str:
    place = key.country if key.region is None else f"{key.country}/{key.region}"
    return f"{key.indicator_id}:{place}:{start_ms}-{end_ms}"


def signal(
    key: PlaceKey,
    start_ms: int,
    end_ms: int,
    summary,
    risk_factors: list[int],
    timing: str,
    index: int,
    evidence: list[dict] | None = None,
) -> dict:
    """The IndicatorSignal of a window's value (a pane of it). Counted by the caller (`count_signals`).
    `evidence`: the summary's evidence as dicts (`evidence_dicts`), when the caller already has them."""
    evidence = evidence_dicts(summary) if evidence is None else evidence
    return {
        "id": signal_id(key, start_ms, end_ms),
        "indicator_id": key.indicator_id,
        "risk_factors": risk_factors,
        "country": key.country,
        "region": key.region,
        "window_start": start_ms,
        "window_end": end_ms,
        "count": summary.count,
        "weighted_count": summary.weighted_count,
        "fatalities": summary.fatalities,
        "distinct_sources": summary.distinct_sources,
        "distinct_origins": summary.distinct_origins,
        "reported_sources": summary.reported_sources,
        "pane": timing,
        "pane_index": index,
        "evidence_ids": [e["source_id"] for e in evidence],
        "evidence": evidence,
        "emitted_at": int(time.time() * 1000),
    }


EVIDENCE_FIELDS = Evidence._fields


def evidence_dicts(summary) -> list[dict]:
    return [dict(zip(EVIDENCE_FIELDS, e, strict=True)) for e in summary.evidence]


def count_signals(tally: Counter) -> None:
    """Count the panes of a bundle, tallied by (pane, country, risk factors): one increment per series
    rather than one per signal and risk factor (a replay emits a million signals)."""
    for (timing, country, risk_factors), n in tally.items():
        for rf in risk_factors:
            SIGNALS.labels(timing, country, f"rf{rf}").inc(n)
    tally.clear()


class _FormatSignal(beam.DoFn):
    def __init__(self, risk_factors: dict[str, list[int]], emit_after_ms: int | None):
        self.risk_factors = risk_factors
        self.emit_after_ms = emit_after_ms
        self.tally: Counter = Counter()

    def finish_bundle(self):
        count_signals(self.tally)

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, summary = element
        if not summary.count:
            # A pane of no partial carries nothing (the windows accumulate, and a window exists only
            # for a partial in it), but on a Java runner it would overwrite the window's value with
            # zero: when one watermark step passes both a window's end and its end plus the allowed
            # lateness (a replay, a backlog), Beam's Flink runner fires the end as the final pane,
            # clears the window, then fires its cleanup timer on the cleared state, and Python's
            # closing behaviour (EMIT_ALWAYS) emits that as a second, empty, ON_TIME pane.
            return
        key = PlaceKey(*key)
        start_ms, end_ms = win.start.micros // 1000, win.end.micros // 1000
        if self.emit_after_ms is not None and end_ms <= self.emit_after_ms:
            SUPPRESSED.inc()  # complete and durable before the restart; recounting it now would undercount
            return
        timing = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}.get(pane.timing, "UNKNOWN") if pane else "UNKNOWN"
        index = pane.index if pane else 0
        rfs = self.risk_factors[key.indicator_id]
        self.tally[(timing, key.country, tuple(rfs))] += 1
        yield signal(key, start_ms, end_ms, summary, rfs, timing, index)


def sliding_windows(slices: dict[int, dict], size_ms: int, period_ms: int):
    """(start ms, end ms, accumulator) of every window holding a slice, from {slice n: accumulator}
    (slice n covers [n * period, (n + 1) * period)); each window merges the size/period slices it
    covers, as Flink's sliced windows do, into a new accumulator (no slice is changed). A window whose
    slices are those of the one before (the slice it drops and the slice it adds are both empty) is
    given the same accumulator object: day-dated events (UCDP, GDELT) fill one hourly slice a day, so
    23 of the 24 windows of a day sliding hourly repeat the one before, and the caller summarises once."""
    per_window = size_ms // period_ms
    starts = sorted({m for n in slices for m in range(n - per_window + 1, n + 1)})
    previous, acc = None, None
    for m in starts:  # the window starting at slice m covers slices m .. m + per_window - 1
        if previous != m - 1 or (m - 1) in slices or (m + per_window - 1) in slices:
            acc = {}
            for n in range(m, m + per_window):
                part = slices.get(n)
                if part is not None:
                    merge_into(acc, part)
        previous = m
        yield m * period_ms, m * period_ms + size_ms, acc


class _SlicedWindows(beam.DoFn):
    """((spec label, place), [(slice n, accumulator), ...]) -> the final signal of each window."""

    def __init__(self, risk_factors: dict[str, list[int]], specs: dict[str, tuple[int, int]]):
        self.risk_factors = risk_factors
        self.specs = specs
        self.tally: Counter = Counter()

    def finish_bundle(self):
        count_signals(self.tally)

    def process(self, element):
        (label, place), parts = element
        size_ms, period_ms = self.specs[label]
        slices: dict[int, dict] = {}
        for n, acc in parts:
            if n in slices:
                merge_into(slices[n], acc)
            else:
                slices[n] = dict(acc)  # a copy: the input may be shared
        key = PlaceKey(*place)
        rfs = self.risk_factors[key.indicator_id]
        windows, last, summary, evidence = 0, None, None, None
        for start_ms, end_ms, acc in sliding_windows(slices, size_ms, period_ms):
            windows += 1
            if acc is not last:  # the same accumulator: the same value as the window before
                last, summary = acc, summarise(acc)
                evidence = evidence_dicts(summary)  # shared by its windows' signals: nothing changes them
            yield signal(key, start_ms, end_ms, summary, rfs, "ON_TIME", 0, evidence)
        self.tally[("ON_TIME", key.country, tuple(rfs))] += windows


def trigger_for(early_count: int | None, early_seconds: float | None):
    """On time at the watermark, early (if set) every `early_count` hits or `early_seconds`, late per hit."""
    early = []
    if early_count:
        early.append(tr.AfterCount(early_count))
    if early_seconds:
        early.append(tr.AfterProcessingTime(early_seconds))
    early_trigger = None if not early else early[0] if len(early) == 1 else tr.AfterAny(*early)
    return tr.AfterWatermark(early=early_trigger, late=tr.AfterCount(1))


class WindowSignals(beam.PTransform):
    """Partials ((spec label, place), accumulator) -> signal dicts, for each window spec; see the module
    doc for the panes."""

    def __init__(
        self,
        catalogue: Catalogue,
        windows: list[WindowSpec],
        allowed_lateness_s: float = 0,
        early_count: int | None = None,
        early_seconds: float | None = None,
        emit_after_ms: int | None = None,
        final_only: bool = False,
    ):
        super().__init__()
        if not windows:
            raise ValueError("at least one window is needed")
        self.risk_factors = {i.id: list(i.risk_factors) for i in catalogue.indicators}
        self.windows = list(windows)
        self.allowed_lateness_s = 0 if final_only else allowed_lateness_s
        self.trigger = tr.AfterWatermark() if final_only else trigger_for(early_count, early_seconds)
        self.emit_after_ms = emit_after_ms

    def expand(self, partials):
        outputs = []
        for spec in self.windows:
            fn = (
                window.FixedWindows(spec.size_s)
                if spec.size_s == spec.period_s
                else window.SlidingWindows(spec.size_s, spec.period_s)
            )
            label = spec.label()
            outputs.append(
                partials
                | f"Of {label}" >> beam.FlatMap(_of_spec, label)
                | f"Window {label}"
                >> beam.WindowInto(
                    fn,
                    trigger=self.trigger,
                    accumulation_mode=tr.AccumulationMode.ACCUMULATING,
                    allowed_lateness=self.allowed_lateness_s,
                )
                | f"Aggregate {label}" >> beam.CombinePerKey(MergeSignals())
                | f"Format {label}" >> beam.ParDo(_FormatSignal(self.risk_factors, self.emit_after_ms))
                # Each signal carries its window; one windowing downstream lets the specs be flattened.
                | f"Unwindow {label}" >> beam.WindowInto(window.GlobalWindows())
            )
        return outputs[0] if len(outputs) == 1 else tuple(outputs) | "Signals" >> beam.Flatten()


class BatchWindowSignals(beam.PTransform):
    """Partials -> each window's final signal, once, in batch: the partials of a place are grouped with
    its slice numbers and every window is assembled from its slices (`sliding_windows`), instead of
    each partial being assigned to every window it lies in and shuffled once per window (24 times for
    a day sliding hourly). The same signals as WindowSignals with `final_only`."""

    def __init__(self, catalogue: Catalogue, windows: list[WindowSpec]):
        super().__init__()
        self.risk_factors = {i.id: list(i.risk_factors) for i in catalogue.indicators}
        self.specs = {w.label(): (w.size_s * 1000, w.period_s * 1000) for w in windows}

    def expand(self, partials):
        return (
            partials
            | "Slice" >> beam.ParDo(_SliceNumber(self.specs))
            | "PerPlace" >> beam.GroupByKey()
            | "Windows" >> beam.ParDo(_SlicedWindows(self.risk_factors, self.specs))
        )


class _SliceNumber(beam.DoFn):
    def __init__(self, specs: dict[str, tuple[int, int]]):
        self.specs = specs

    def process(self, partial, timestamp=beam.DoFn.TimestampParam):
        key, acc = partial
        yield key, (timestamp.micros // 1000 // self.specs[key[0]][1], acc)


def _of_spec(partial, label: str):
    (spec, place), acc = partial
    if spec == label:
        yield place, acc


class IndicatorSignals(beam.PTransform):
    """Observations -> signal dicts: folded per bundle (slices.py), then WindowSignals."""

    def __init__(
        self,
        catalogue: Catalogue,
        windows: list[WindowSpec],
        *,
        by_region: bool = True,
        indicators_by_window: dict[str, frozenset[str]] | None = None,
        **window_args,
    ):
        super().__init__()
        self.catalogue = catalogue
        self.windows = windows
        self.factory = slices_for(
            catalogue, windows, by_region, indicators_by_window, window_args.get("early_count")
        )
        self.window_args = window_args

    def expand(self, observations):
        return (
            observations
            | "Fold" >> beam.ParDo(_FoldBundle(self.factory))
            | "Windows" >> WindowSignals(self.catalogue, self.windows, **self.window_args)
        )
