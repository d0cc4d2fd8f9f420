"""Indicator hits -> signal values: a pure, mergeable aggregate that de-duplicates as it counts.

A `Hit` is one observation meeting one indicator. Hits with the same dedup key in one window are one event:
it counts once, its weight and deaths are the largest reported, and the origins (publishers) of every copy
are kept. `distinct_sources` measures corroboration: the number of independent origins behind the signal,
or, if larger, the number of sources one of its events reports for itself (UCDP number_of_sources, GDELT
NumSources), so that an event a curated dataset built from five reports is not "one source" because
the dataset is one publisher.
`SignalCombineFn` is the Beam CombineFn over these accumulators; `summarise` turns an accumulator into the
signal's numbers with its top evidence. Nothing here knows about windows or Kafka.
"""

from __future__ import annotations

import heapq
from typing import NamedTuple

import apache_beam as beam

# How much one observation of each kind of source counts in `weighted_count`, times the indicator's weight:
# curated conflict data and UN or field reports are verified; machine-coded event data and news are not.
SOURCE_TYPE_WEIGHTS = {
    "CONFLICT_DATA": 1.0,
    "UN_REPORT": 1.0,
    "FIELD_MONITOR": 1.0,
    "CIVIL_SOCIETY": 0.8,
    "EVENT_DATA": 0.5,
    "NEWS": 0.5,
    "OTHER": 0.3,
}
TOP_EVIDENCE = 5


class Evidence(NamedTuple):
    observation_id: str
    source_id: str
    title: str | None
    url: str | None
    origin: str
    event_time: int


class Hit(NamedTuple):
    dedup_key: str
    weight: float
    fatalities: int
    origin: str
    evidence: Evidence
    sources: int = 1  # sources the event reports for itself
    span_days: int = 1  # days the event is only known to lie within


def hit(
    observation: dict,
    indicator_weight: float,
    weights: dict[str, float] = SOURCE_TYPE_WEIGHTS,
    deaths: str = "all",
) -> Hit:
    """The hit of an observation on an indicator of weight `indicator_weight`; `deaths` says which
    deaths the indicator counts: all of them, or the civilians among them."""
    weight = indicator_weight * weights.get(observation.get("source_type") or "OTHER", weights["OTHER"])
    field = "civilian_fatalities" if deaths == "civilians" else "fatalities"
    return Hit(
        observation["dedup_key"],
        weight,
        observation.get(field) or 0,
        observation["origin"],
        Evidence(
            observation["id"],
            observation["source_ids"][0],
            observation.get("title"),
            observation.get("url"),
            observation["origin"],
            observation["event_time"],
        ),
        max(observation.get("distinct_sources") or 1, 1),
        max(observation.get("span_days") or 1, 1),
    )


def wire(h: Hit) -> tuple:
    """A hit as plain tuples: Beam's fast coder encodes those natively, a NamedTuple only by pickling
    it (six times slower, measured), and hits and accumulators cross the runner at every window."""
    return (h.dedup_key, h.weight, h.fatalities, h.origin, tuple(h.evidence), h.sources, h.span_days)


SPAN = 6  # position of span_days in a wired hit


# Accumulator: dedup key -> [weight, fatalities, origins (frozenset), evidence (a plain Evidence tuple),
# the largest number of sources a copy reports]
Accumulator = dict
SOURCE_ID, EVENT_TIME, OBSERVATION_ID = 1, 5, 0  # positions in a plain Evidence tuple


def add(acc: Accumulator, h) -> Accumulator:
    """Add a Hit (or its `wire` form)."""
    dedup_key, weight, fatalities, origin, evidence, sources = h[:6]
    seen = acc.get(dedup_key)
    if seen is None:
        acc[dedup_key] = [weight, fatalities, frozenset((origin,)), tuple(evidence), sources]
    else:
        _merge_entry(seen, weight, fatalities, frozenset((origin,)), tuple(evidence), sources)
    return acc


def _merge_entry(
    entry: list, weight: float, fatalities: int, origins: frozenset, evidence: tuple, sources: int
) -> None:
    if weight > entry[0] or (weight == entry[0] and evidence[SOURCE_ID] < entry[3][SOURCE_ID]):
        entry[3] = evidence  # the strongest copy is the evidence shown (ties: a stable choice)
    entry[0] = max(entry[0], weight)
    entry[1] = max(entry[1], fatalities)
    entry[2] = entry[2] | origins
    entry[4] = max(entry[4], sources)


def merge(accumulators) -> Accumulator:
    accumulators = iter(accumulators)
    out = next(accumulators, None)
    if out is None:
        return {}
    for acc in accumulators:
        for key, (weight, fatalities, origins, evidence, sources) in acc.items():
            seen = out.get(key)
            if seen is None:
                out[key] = [weight, fatalities, origins, evidence, sources]
            else:
                _merge_entry(seen, weight, fatalities, origins, evidence, sources)
    return out


class Summary(NamedTuple):
    count: int
    weighted_count: float
    fatalities: int
    distinct_sources: int
    evidence: list[Evidence]


def summarise(acc: Accumulator, top: int = TOP_EVIDENCE) -> Summary:
    origins: set[str] = set()
    weighted = 0.0
    deaths = 0
    reported = 1
    for weight, fatalities, entry_origins, _, sources in acc.values():
        weighted += weight
        deaths += fatalities
        origins |= entry_origins
        reported = max(reported, sources)
    # Strongest first: weight, then deaths, then the most corroborated, then the latest; id breaks ties.
    ranked = heapq.nsmallest(
        top,
        acc.values(),
        key=lambda e: (-e[0], -e[1], -max(len(e[2]), e[4]), -e[3][EVENT_TIME], e[3][OBSERVATION_ID]),
    )
    sources = max(len(origins), reported)
    return Summary(len(acc), round(weighted, 6), deaths, sources, [Evidence(*e[3]) for e in ranked])


class SignalCombineFn(beam.CombineFn):
    def create_accumulator(self):
        return {}

    def add_input(self, acc, h):
        return add(acc, h)

    def add_inputs(self, acc, hits):
        for h in hits:
            add(acc, h)
        return acc

    def merge_accumulators(self, accumulators):
        return merge(accumulators)

    def extract_output(self, acc):
        return summarise(acc)

    def compact(self, acc):
        return acc
