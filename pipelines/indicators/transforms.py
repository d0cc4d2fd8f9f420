"""The indicator pipeline's composite transforms: normalise -> classify -> window -> signal.

Each stage takes plain settings in `__init__` (so tests shrink windows and lateness) and `expand` only
composes; the same transforms run in streaming (from Kafka) and batch (files, topic ranges) pipelines.

Windows: one or more sliding event-time windows (size, period), each firing early (after a number of hits
or processing-time seconds, if set), on time when the watermark passes the window end, and late once per
late hit within the allowed lateness; panes accumulate, so each pane carries the window's whole value and
replaces the earlier one under the same signal id. Later data than that never reaches the windows: the
Kafka source sends it to the dead-letter topic (see kafka_source.py), because a runner drops it silently.
Prism (Beam 2.77) fires late panes only when a window closes (end + allowed lateness); Flink per record.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import apache_beam as beam
from apache_beam.transforms import trigger as tr
from apache_beam.transforms import window

from tocsin.pipelines.indicators.aggregate import SOURCE_TYPE_WEIGHTS, SPAN, SignalCombineFn, hit, wire
from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.indicators.classify import classify
from tocsin.pipelines.windowspec import WindowSpec, parse_duration, parse_duration_or_zero  # noqa: F401 (re-exported)
from tocsin.telemetry.metrics import counter

OBSERVATIONS = counter("tocsin_observations_total", "Observations classified", ["source_type"])
UNLOCATED = counter(
    "tocsin_observations_unlocated_total",
    "Observations without a country: kept, but in no signal",
    ["source"],
)
HITS = counter("tocsin_indicator_hits_total", "Observations matching an indicator", ["indicator"])
SIGNALS = counter(
    "tocsin_signals_total", "Signal panes emitted", ["pane", "country", "risk_factor"]
)  # country and risk factor for the dashboards: ~200 x 14 x 4 series at most
SPANS_TOO_LONG = counter(
    "tocsin_hits_span_too_long_total",
    "Hits kept out of a window spec shorter than the span of days their event is only known to lie in",
)
SUPPRESSED = counter(
    "tocsin_signals_suppressed_total", "Panes of windows already complete before a restart, not re-emitted"
)


class PlaceKey(NamedTuple):
    indicator_id: str
    country: str
    region: str | None


# ---------------------------------------------------------------------------------------------- classify


class _Classify(beam.DoFn):
    def __init__(self, catalogue: Catalogue, source_weights: dict[str, float], by_region: bool):
        self.catalogue = catalogue
        self.source_weights = source_weights
        self.by_region = by_region

    def process(self, observation):
        OBSERVATIONS.labels(observation.get("source_type") or "OTHER").inc()
        country = observation.get("country")
        if not country:
            UNLOCATED.labels(observation.get("source", "")).inc()
            return
        region = observation.get("admin1") if self.by_region else None
        for match in classify(self.catalogue, observation):
            HITS.labels(match.indicator_id).inc()
            h = wire(hit(observation, match.weight, self.source_weights, match.deaths))
            # Keys as plain tuples too (see `wire`); _FormatSignal names them again.
            yield (match.indicator_id, country, None), h
            if region:
                yield (match.indicator_id, country, region), h


class Classify(beam.PTransform):
    """Observation -> (PlaceKey, Hit) per matching indicator, for the country and for its region; both
    as plain tuples (`aggregate.wire`)."""

    def __init__(
        self,
        catalogue: Catalogue,
        source_weights: dict[str, float] | None = None,
        by_region: bool = True,
    ):
        super().__init__()
        self.catalogue = catalogue
        self.source_weights = dict(source_weights or SOURCE_TYPE_WEIGHTS)
        self.by_region = by_region

    def expand(self, observations):
        return observations | beam.ParDo(_Classify(self.catalogue, self.source_weights, self.by_region))


# ---------------------------------------------------------------------------------------------- window


def signal_id(key: PlaceKey, start_ms: int, end_ms: int) -> str:
    place = key.country if key.region is None else f"{key.country}/{key.region}"
    return f"{key.indicator_id}:{place}:{start_ms}-{end_ms}"


class _FormatSignal(beam.DoFn):
    def __init__(self, risk_factors: dict[str, list[int]], emit_after_ms: int | None):
        self.risk_factors = risk_factors
        self.emit_after_ms = emit_after_ms

    def process(self, element, win=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam):
        key, summary = element
        key = PlaceKey(*key)
        start_ms, end_ms = win.start.micros // 1000, win.end.micros // 1000
        if self.emit_after_ms is not None and end_ms <= self.emit_after_ms:
            SUPPRESSED.inc()  # complete and durable before the restart; recounting it now would undercount
            return
        timing = {0: "EARLY", 1: "ON_TIME", 2: "LATE"}.get(pane.timing, "UNKNOWN") if pane else "UNKNOWN"
        for rf in self.risk_factors[key.indicator_id]:
            SIGNALS.labels(timing, key.country, f"rf{rf}").inc()
        yield {
            "id": signal_id(key, start_ms, end_ms),
            "indicator_id": key.indicator_id,
            "risk_factors": self.risk_factors[key.indicator_id],
            "country": key.country,
            "region": key.region,
            "window_start": start_ms,
            "window_end": end_ms,
            "count": summary.count,
            "weighted_count": summary.weighted_count,
            "fatalities": summary.fatalities,
            "distinct_sources": summary.distinct_sources,
            "pane": timing,
            "pane_index": pane.index if pane else 0,
            "evidence_ids": [e.source_id for e in summary.evidence],
            "evidence": [e._asdict() for e in summary.evidence],
            "emitted_at": int(time.time() * 1000),
        }


class _FitsWindow(beam.DoFn):
    """The hits a window spec counts: of the indicators asked for it (all by default), and of events
    that can be placed in a window that long."""

    def __init__(self, size_s: int, indicators: frozenset[str] | None = None):
        self.size_days = size_s / 86_400
        self.indicators = indicators

    def process(self, element):
        if self.indicators is not None and element[0][0] not in self.indicators:
            return
        if element[1][SPAN] <= self.size_days or element[1][SPAN] == 1:
            yield element
        else:
            SPANS_TOO_LONG.inc()


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
    """(PlaceKey, Hit) -> signal dicts, for each window spec; see the module doc for the panes."""

    def __init__(
        self,
        catalogue: Catalogue,
        windows: list[WindowSpec],
        allowed_lateness_s: float = 0,
        early_count: int | None = None,
        early_seconds: float | None = None,
        emit_after_ms: int | None = None,
        indicators_by_window: dict[str, frozenset[str]] | None = None,
    ):
        super().__init__()
        if not windows:
            raise ValueError("at least one window is needed")
        # Window label -> the indicators to signal in it (default: every indicator in every window). A
        # replay for rules asks only for what they read: a volume of reports in hourly windows is
        # hundreds of thousands of panes no rule looks at.
        self.indicators_by_window = indicators_by_window
        self.risk_factors = {i.id: list(i.risk_factors) for i in catalogue.indicators}
        self.windows = list(windows)
        self.allowed_lateness_s = allowed_lateness_s
        self.early_count = early_count
        self.early_seconds = early_seconds
        self.emit_after_ms = emit_after_ms

    def expand(self, hits):
        outputs = []
        for spec in self.windows:
            fn = (
                window.FixedWindows(spec.size_s)
                if spec.size_s == spec.period_s
                else window.SlidingWindows(spec.size_s, spec.period_s)
            )
            label = spec.label()
            outputs.append(
                hits
                # An event known only to lie within a month or a year cannot be placed in a week: it is
                # kept out of windows shorter than its span (a year's deaths on its first day would be
                # the largest spike of the year), and counted in windows at least that long.
                | f"Fits {label}"
                >> beam.ParDo(_FitsWindow(spec.size_s, (self.indicators_by_window or {}).get(label)))
                | f"Window {label}"
                >> beam.WindowInto(
                    fn,
                    trigger=trigger_for(self.early_count, self.early_seconds),
                    accumulation_mode=tr.AccumulationMode.ACCUMULATING,
                    allowed_lateness=self.allowed_lateness_s,
                )
                | f"Aggregate {label}" >> beam.CombinePerKey(SignalCombineFn())
                | f"Format {label}" >> beam.ParDo(_FormatSignal(self.risk_factors, self.emit_after_ms))
                # Each signal carries its window; one windowing downstream lets the specs be flattened.
                | f"Unwindow {label}" >> beam.WindowInto(window.GlobalWindows())
            )
        return outputs[0] if len(outputs) == 1 else tuple(outputs) | "Signals" >> beam.Flatten()


class IndicatorSignals(beam.PTransform):
    """Observations -> signal dicts: Classify then WindowSignals."""

    def __init__(
        self, catalogue: Catalogue, windows: list[WindowSpec], *, by_region: bool = True, **window_args
    ):
        super().__init__()
        self.catalogue = catalogue
        self.windows = windows
        self.by_region = by_region
        self.window_args = window_args

    def expand(self, observations):
        return (
            observations
            | "Classify" >> Classify(self.catalogue, by_region=self.by_region)
            | "Windows" >> WindowSignals(self.catalogue, self.windows, **self.window_args)
        )
