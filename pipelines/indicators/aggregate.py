"""Indicator hits -> signal values: a pure, mergeable aggregate that de-duplicates as it counts.

A `Hit` is one observation meeting one indicator. Hits with the same dedup key in one window are one event:
it counts once, its weight and deaths are the largest reported, and the origins (publishers) of every copy
are kept. `distinct_sources` measures corroboration: the number of independent origins behind the signal,
or, if larger, the number of sources one of its events reports for itself (UCDP number_of_sources, GDELT
NumSources), so that an event a curated dataset built from five reports is not "one source" because
the dataset is one publisher.
`MergeSignals` is the Beam CombineFn over these accumulators; `summarise` turns an accumulator into the
signal's numbers with its top evidence. Nothing here knows about windows or Kafka.
"""

from __future__ import annotations

import heapq
from operator import itemgetter
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


# Accumulator: dedup key -> (weight, fatalities, origins (frozenset), evidence (a plain Evidence tuple),
# the largest number of sources a copy reports). Entries are immutable tuples: one slice's accumulator
# is merged into every window the slice lies in (24 windows of a day sliding hourly), and merging by
# dict.update shares its entries; a merge that changes an entry makes a new one.
Accumulator = dict
SOURCE_ID, EVENT_TIME, OBSERVATION_ID = 1, 5, 0  # positions in a plain Evidence tuple


def add(acc: Accumulator, h) -> Accumulator:
    """Add a Hit (or its `wire` form)."""
    dedup_key, weight, fatalities, origin, evidence, sources = h[:6]
    entry = (weight, fatalities, frozenset((origin,)), tuple(evidence), sources)
    seen = acc.get(dedup_key)
    acc[dedup_key] = entry if seen is None else _merged(seen, entry)
    return acc


def _merged(a: tuple, b: tuple) -> tuple:
    """Two copies of one event: the largest weight, deaths and sources, every origin, and as evidence
    the strongest copy (ties: the first by source id, event time, url, origin; a total order, so the
    outcome never depends on the order copies were merged in, which differs between runners)."""
    if b[0] > a[0] or (b[0] == a[0] and _tie_order(b[3]) < _tie_order(a[3])):
        evidence = b[3]
    else:
        evidence = a[3]
    return (max(a[0], b[0]), max(a[1], b[1]), a[2] | b[2], evidence, max(a[4], b[4]))


def _tie_order(evidence: tuple) -> tuple:
    return (
        evidence[SOURCE_ID],
        evidence[EVENT_TIME],
        evidence[3] or "",
        evidence[4],
        evidence[OBSERVATION_ID],
    )


def merge_into(out: Accumulator, acc: Accumulator) -> Accumulator:
    """Fold `acc` into `out` (never changing `acc` or any entry): events only one holds are taken as
    they are, in one dict.update; only the events both hold are merged entry by entry."""
    common = out.keys() & acc.keys()
    if not common:
        out.update(acc)
        return out
    both = {key: _merged(out[key], acc[key]) for key in common}
    out.update(acc)
    out.update(both)
    return out


def merge(accumulators) -> Accumulator:
    """One accumulator of several; a new dict, so no input is changed."""
    out: Accumulator = {}
    for acc in accumulators:
        merge_into(out, acc)
    return out


class Summary(NamedTuple):
    count: int
    weighted_count: float
    fatalities: int
    distinct_sources: int  # the larger of the two below: what a rule reads unless it says which
    evidence: list[Evidence]
    distinct_origins: int = 1  # independent publishers behind the signal
    reported_sources: int = 1  # the most sources one of its events reports for itself


def _rank(entry: tuple) -> tuple:
    # Strongest first: weight, then deaths, then the most corroborated, then the latest; id breaks ties.
    return (
        -entry[0],
        -entry[1],
        -max(len(entry[2]), entry[4]),
        -entry[3][EVENT_TIME],
        entry[3][OBSERVATION_ID],
    )


def summarise(acc: Accumulator, top: int = TOP_EVIDENCE) -> Summary:
    # Built-ins over the entries (sum, map, itemgetter, set union) rather than a Python loop: every
    # window's value is summarised, and a window of a day sliding hourly holds each event 24 times.
    entries = acc.values()
    origins = frozenset().union(*map(itemgetter(2), entries))
    reported = max(map(itemgetter(4), entries), default=1)
    ranked = sorted(entries, key=_rank) if len(acc) <= top else heapq.nsmallest(top, entries, key=_rank)
    return Summary(
        len(acc),
        round(sum(map(itemgetter(0), entries)), 6),
        sum(map(itemgetter(1), entries)),
        max(len(origins), reported, 1),
        [Evidence(*e[3]) for e in ranked],
        max(len(origins), 1),
        max(reported, 1),
    )


class MergeSignals(beam.CombineFn):
    """Partial accumulators (`add`, slices.py) -> a window's Summary. Its inputs are accumulators, not
    hits: observations are folded into partials before the windows, so one merge serves both."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, partial):
        return merge_into(acc, partial)

    def add_inputs(self, acc, partials):
        for partial in partials:
            merge_into(acc, partial)
        return acc

    def merge_accumulators(self, accumulators):
        accumulators = iter(accumulators)
        out = next(accumulators, None)  # Beam lets the first be changed: it is this fn's own
        if out is None:
            return {}
        for acc in accumulators:
            merge_into(out, acc)
        return out

    def extract_output(self, acc):
        return summarise(acc)

    def compact(self, acc):
        return acc
