"""Folding observations into slice partials (slices.py) gives every window exactly the value its hits
give one by one, de-duplication across slices included."""

from __future__ import annotations

import random
from collections import defaultdict

from tocsin.pipelines.indicators import load_catalogue
from tocsin.pipelines.indicators.aggregate import merge, summarise
from tocsin.pipelines.indicators.normalise import from_incident
from tocsin.pipelines.indicators.slices import SignalSlices
from tocsin.pipelines.windowspec import WindowSpec

DAY = 86_400_000
CATALOGUE = load_catalogue()
WINDOWS = [WindowSpec.parse("1d/1h"), WindowSpec.parse("7d/1d")]


def observations(n: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        event = rng.randrange(max(1, n // 3))  # about three reports of each event, hours apart
        out.append(
            from_incident(
                {
                    "id": f"gdelt2:{event}",  # copies of one event: one dedup key
                    "source": "gdelt2",
                    "source_type": "EVENT_DATA",
                    # Copies of an event are reported hours apart: they land in different slices.
                    "event_time": 1_605_225_600_000 + event * 3_600_000 + rng.randrange(0, 6) * 3_500_000,
                    "country": ["ETH", "SDN"][event % 2],
                    "admin1": ["Tigray", "Darfur", None][event % 3],
                    "url": f"https://{rng.choice(['a', 'b', 'c'])}.example.org/{event}",
                    "event_codes": ["cameo:190", "cameo-base:190", "cameo-root:19"],
                    "goldstein": -10.0,
                    "source_record_id": str(event),
                    "fatalities": {"best": rng.randrange(5)},
                }
            )
        )
    return out


def windows_of(spec: WindowSpec, partials) -> dict:
    """{(place, window start): [accumulator, ...]} of partials stamped (element, ms)."""
    size, period = spec.size_s * 1000, spec.period_s * 1000
    out = defaultdict(list)
    for ((label, place), acc), ms in partials:
        if label != spec.label():
            continue
        last = ms - ms % period
        for start in range(last - size + period, last + 1, period):
            out[(place, start)].append(acc)
    return out


def test_windows_merged_from_slices_equal_windows_of_single_hits():
    obs = observations(600)
    folded, single = SignalSlices(CATALOGUE, WINDOWS), SignalSlices(CATALOGUE, WINDOWS, fold=False)
    folded_parts = []
    for call in (obs[:250], obs[250:]):  # two read calls: the second fold starts afresh
        for o in call:
            folded.add(None, o)
            single.add(None, o)
        folded_parts += folded.drain()
    single_parts = list(single.drain())
    assert len(folded_parts) < len(single_parts) / 2  # the point of folding
    deduplicated = 0
    for spec in WINDOWS:
        by_slices, by_hits = windows_of(spec, folded_parts), windows_of(spec, single_parts)
        assert by_slices.keys() == by_hits.keys()
        for at, accs in by_hits.items():
            assert summarise(merge(by_slices[at])) == summarise(merge(accs)), at
            deduplicated += summarise(merge(accs)).count < len(accs)
    assert deduplicated  # copies of one event in different slices counted once


def test_merging_never_changes_a_partial_shared_by_several_windows():
    [o1, o2] = observations(2, seed=9)[:2]
    fold = SignalSlices(CATALOGUE, [WindowSpec.parse("1d/1h")], by_region=False)
    fold.add(None, o1)
    (element, _), *_ = list(fold.drain())
    partial = element[1]
    before = {k: v for k, v in partial.items()}
    other = SignalSlices(CATALOGUE, [WindowSpec.parse("1d/1h")], by_region=False)
    other.add(None, {**o1, "origin": "z.example.org", "id": "x"})
    (element2, _), *_ = list(other.drain())
    window_a = merge([partial, element2[1]])  # the same event from another publisher
    assert summarise(window_a).distinct_sources == 2
    assert partial == before and summarise(partial).distinct_sources == 1
