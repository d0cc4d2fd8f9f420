"""Observations -> partial signal values per window spec, place and time slice (in-reader combining).

An observation meets a few indicators; each meeting is a hit for the country and for its region, and
each hit lies in size/period windows of every spec (24 for a day sliding hourly). Sent to the runner
one by one, those are dozens of elements per observation, each dispatched, windowed and coded in
Python. Here a batch of observations (one read call of the Kafka source, or a chunk of a file in a
replay) is classified and folded into one accumulator (aggregate.py) per (spec, place, slice), where
a slice is the spec's period: every window of the spec is a union of whole slices, so merging the
accumulators of its slices gives exactly the value the hits would have given one by one.

The rules each spec applies to a hit are here, in one place: only the indicators asked for in that
spec (a replay asks only for what its rules read), and an event known only to lie within a span of
days longer than the spec's windows is kept out of them (a year's deaths on its first day would be
the largest spike of the year).
"""

from __future__ import annotations

from collections import Counter

from tocsin.pipelines.indicators.aggregate import SOURCE_TYPE_WEIGHTS, add, hit, wire
from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.indicators.classify import classify
from tocsin.pipelines.io.kafka_source import Combiner
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.telemetry.beam_metrics import pipeline_counter

OBSERVATIONS = pipeline_counter("tocsin_observations_total", "Observations classified", ["source_type"])
UNLOCATED = pipeline_counter(
    "tocsin_observations_unlocated_total",
    "Observations without a country: kept, but in no signal",
    ["source"],
)
HITS = pipeline_counter("tocsin_indicator_hits_total", "Observations matching an indicator", ["indicator"])
SPANS_TOO_LONG = pipeline_counter(
    "tocsin_hits_span_too_long_total",
    "Hits kept out of a window spec shorter than the span of days their event is only known to lie in",
)
COUNTERS = {
    "observations": OBSERVATIONS,
    "unlocated": UNLOCATED,
    "hits": HITS,
    "span_too_long": SPANS_TOO_LONG,
}


class _Spec:
    """What folding needs of one window spec."""

    def __init__(self, spec: WindowSpec, indicators: frozenset[str] | None):
        self.label = spec.label()
        self.slice_ms = spec.period_s * 1000
        self.size_days = spec.size_s / 86_400
        self.indicators = indicators

    def takes(self, indicator_id: str, span_days: int) -> bool:
        if self.indicators is not None and indicator_id not in self.indicators:
            return False
        return span_days <= self.size_days or span_days == 1

    def refuses(self, indicator_id: str) -> int:
        """1 when a hit this spec does not take was refused for its span (not for its indicator)."""
        return int(self.indicators is None or indicator_id in self.indicators)


class SignalSlices(Combiner):
    """Folds observations into {(spec label, indicator, country, region): accumulator} per slice.

    `drain` yields ((label, (indicator, country, region)), accumulator) stamped with the last
    millisecond of its slice. With `fold=False` every hit is its own element (a trigger that fires
    after a number of hits needs to see them one by one)."""

    def __init__(
        self,
        catalogue: Catalogue,
        windows: list[WindowSpec],
        by_region: bool = True,
        indicators_by_window: dict[str, frozenset[str]] | None = None,
        source_weights: dict[str, float] | None = None,
        fold: bool = True,
    ):
        self.catalogue = catalogue
        self.specs = [_Spec(w, (indicators_by_window or {}).get(w.label())) for w in windows]
        self.by_region = by_region
        self.weights = dict(source_weights or SOURCE_TYPE_WEIGHTS)
        self.fold = fold
        self.slices: dict = {}
        self.single: list = []
        self.counts: Counter = Counter()

    def add(self, key, observation: dict, event_ms: int = 0) -> None:
        """Classify an observation and fold its hits in (at the observation's own event time)."""
        counts = self.counts
        counts[("observations", observation.get("source_type") or "OTHER")] += 1
        country = observation.get("country")
        if not country:
            counts[("unlocated", observation.get("source", ""))] += 1
            return
        region = observation.get("admin1") if self.by_region else None
        event_ms = observation["event_time"]  # what the source stamped the record with, or a file's
        for match in classify(self.catalogue, observation):
            counts[("hits", match.indicator_id)] += 1
            h = wire(hit(observation, match.weight, self.weights, match.deaths))
            span = h[6]
            places = ((match.indicator_id, country, None),)
            if region:
                places += ((match.indicator_id, country, region),)
            for spec in self.specs:
                if not spec.takes(match.indicator_id, span):
                    counts[("span_too_long",)] += spec.refuses(match.indicator_id)
                    continue
                n = event_ms // spec.slice_ms
                for place in places:
                    if not self.fold:
                        self.single.append(((spec.label, place), add({}, h), event_ms))
                        continue
                    at = (spec.label, place, n)
                    acc = self.slices.get(at)
                    if acc is None:
                        self.slices[at] = add({}, h)
                    else:
                        add(acc, h)

    def partials(self):
        """((label, (indicator, country, region)), accumulator) and its timestamp, for everything folded
        since the last call; the counters are left to `drain` (or to whoever takes the `tally`)."""
        slices, self.slices = self.slices, {}
        single, self.single = self.single, []
        specs = {s.label: s.slice_ms for s in self.specs}
        for (label, place, n), acc in slices.items():
            yield ((label, place), acc), (n + 1) * specs[label] - 1
        for key, acc, event_ms in single:
            yield (key, acc), event_ms

    def drain(self):
        yield from self.partials()
        count_tally(self.tally())

    def tally(self) -> dict:
        """What was counted since the last call, for `count_tally` (in this process or another)."""
        counts, self.counts = self.counts, Counter()
        return dict(counts)


def count_tally(tally: dict) -> None:
    """Count a SignalSlices tally: one counter increment per label seen, not one per observation."""
    for (name, *labels), n in tally.items():
        if n:
            counter = COUNTERS[name]
            (counter.labels(*labels) if labels else counter).inc(n)


class SignalSlicesFactory:
    """Picklable factory of SignalSlices, one per read call or chunk."""

    def __init__(self, catalogue: Catalogue, windows: list[WindowSpec], **options):
        self.catalogue = catalogue
        self.windows = list(windows)
        self.options = options

    def __call__(self) -> SignalSlices:
        return SignalSlices(self.catalogue, self.windows, **self.options)


def slices_for(
    catalogue: Catalogue,
    windows: list[WindowSpec],
    by_region: bool,
    indicators_by_window: dict[str, frozenset[str]] | None,
    early_count: int | None,
) -> SignalSlicesFactory:
    """The fold of a job's settings. A trigger that fires after a number of hits (`early_count`) must
    see them one by one: every hit is then its own partial."""
    return SignalSlicesFactory(
        catalogue,
        windows,
        by_region=by_region,
        indicators_by_window=indicators_by_window,
        fold=early_count is None,
    )
