"""The signal aggregate: counts distinct events, keeps the strongest copy, merges in any order."""

from __future__ import annotations

import itertools

import pytest

from tocsin.pipelines.indicators.aggregate import (
    SOURCE_TYPE_WEIGHTS,
    Evidence,
    Hit,
    MergeSignals,
    add,
    hit,
    merge,
    summarise,
)
from tocsin.pipelines.indicators.transforms import PlaceKey, signal_id
from tocsin.pipelines.windowspec import WindowSpec


def h(key: str, weight: float = 1.0, deaths: int = 0, origin: str = "a.org", source: str = "s:1", t: int = 0):
    return Hit(key, weight, deaths, origin, Evidence(f"obs-{key}", source, None, None, origin, t))


def test_the_same_event_counts_once_with_its_largest_weight_and_deaths_and_all_origins():
    acc = {}
    for x in (h("e1", 0.5, 3, "a.org", "s:1"), h("e1", 1.0, 7, "b.org", "s:2"), h("e2", 0.5, 1, "a.org")):
        add(acc, x)
    summary = summarise(acc)
    assert summary.count == 2
    assert summary.weighted_count == 1.5
    assert summary.fatalities == 8
    assert summary.distinct_sources == 2
    assert [e.source_id for e in summary.evidence] == ["s:2", "s:1"]  # strongest first


def test_merging_accumulators_in_any_order_gives_the_same_summary():
    hits = [h("e1", 0.5, 3, "a.org", "s:1"), h("e1", 0.5, 2, "b.org", "s:0"), h("e2", 1, 0, "c.org", "s:9")]
    results = set()
    for order in itertools.permutations(hits):
        parts = [add({}, x) for x in order]
        results.add(repr(summarise(merge(parts))))
    assert len(results) == 1


def test_top_evidence_is_capped_and_ranked_by_weight_deaths_then_recency():
    acc = {}
    for n in range(8):
        add(acc, h(f"e{n}", weight=1.0 if n % 2 else 0.5, deaths=n, source=f"s:{n}", t=n))
    assert [e.source_id for e in summarise(acc, top=3).evidence] == ["s:7", "s:5", "s:3"]


def test_the_combine_fn_is_the_pure_functions():
    fn = MergeSignals()
    a = fn.add_inputs(fn.create_accumulator(), [add({}, h("e1")), add({}, h("e2"))])
    b = fn.add_input(fn.create_accumulator(), add({}, h("e1", origin="z.org")))
    out = fn.extract_output(fn.merge_accumulators([a, b]))
    assert (out.count, out.distinct_sources) == (2, 2)
    assert fn.extract_output(fn.merge_accumulators([])).count == 0


def test_a_hit_weighs_the_indicator_by_the_source_type():
    obs = {
        "id": "o1",
        "dedup_key": "record:gdelt2:1",
        "source_ids": ["gdelt2:1"],
        "source_type": "EVENT_DATA",
        "origin": "x.org",
        "event_time": 5,
        "fatalities": 2,
    }
    assert hit(obs, 0.5).weight == 0.5 * SOURCE_TYPE_WEIGHTS["EVENT_DATA"]
    assert hit({**obs, "source_type": "CONFLICT_DATA"}, 0.5).weight == 0.5


def test_partials_leave_the_fold_as_plain_data_and_aggregate_the_same():
    # Beam's fast coder encodes plain tuples, dicts and frozensets natively and pickles NamedTuples.
    from apache_beam.coders import FastPrimitivesCoder

    from tocsin.pipelines.indicators import load_catalogue
    from tocsin.pipelines.indicators.normalise import from_incident
    from tocsin.pipelines.indicators.slices import SignalSlices
    from tocsin.pipelines.windowspec import WindowSpec

    observation = from_incident(
        {
            "id": "gdelt2:1",
            "source": "gdelt2",
            "source_type": "EVENT_DATA",
            "event_time": 1_605_225_600_000,
            "country": "ETH",
            "admin1": "Tigray",
            "url": "https://news.example.org/story/1",
            "event_codes": ["cameo:190", "cameo-base:190", "cameo-root:19"],
            "goldstein": -10.0,
        }
    )
    fold = SignalSlices(load_catalogue(), [WindowSpec.parse("1d/1h")], by_region=True)
    fold.add(None, observation)
    out = list(fold.drain())
    assert [(key, ts) for (key, _), ts in out] == [
        (("1d/1h", ("rf1.armed_conflict", "ETH", None)), 1_605_229_199_999),
        (("1d/1h", ("rf1.armed_conflict", "ETH", "Tigray")), 1_605_229_199_999),
    ]
    coder = FastPrimitivesCoder()
    for element, _ in out:
        assert coder.decode(coder.encode(element)) == element
    [evidence] = summarise(out[0][0][1]).evidence
    assert evidence.source_id == "gdelt2:1"


@pytest.mark.parametrize(
    ("text", "spec", "label"),
    [
        ("1d/1h", WindowSpec(86400, 3600), "1d/1h"),
        ("7d/1d", WindowSpec(604800, 86400), "7d/1d"),  # not 1w/1d: what the user wrote
        ("600s", WindowSpec(600, 600), "10m/10m"),
    ],
)
def test_window_specs_parse(text, spec, label):
    assert WindowSpec.parse(text) == spec
    assert spec.label() == label


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1d/7h", "window '1d/7h': the size must be a multiple of the period"),
        ("0d", "duration '0d' must be greater than zero"),
        ("1.5h", "duration '1.5h' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
        ("", "duration '' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
    ],
)
def test_bad_window_specs_say_why(text, message):
    with pytest.raises(ValueError) as raised:
        WindowSpec.parse(text)
    assert str(raised.value) == message


def test_signal_ids_name_the_indicator_place_and_window():
    assert (
        signal_id(PlaceKey("rf1.armed_conflict", "SDN", None), 0, 86_400_000)
        == "rf1.armed_conflict:SDN:0-86400000"
    )
    assert (
        signal_id(PlaceKey("rf1.armed_conflict", "SDN", "Darfur"), 0, 1)
        == "rf1.armed_conflict:SDN/Darfur:0-1"
    )


def test_corroboration_is_the_publishers_or_the_sources_an_event_reports_for_itself():
    """UCDP is one publisher, but an event it built from five reports is corroborated by five."""
    acc = {}
    add(acc, h("e1", origin="ucdp-ged")._replace(sources=5))
    add(acc, h("e2", origin="ucdp-ged")._replace(sources=2))
    assert summarise(acc).distinct_sources == 5
    news = {}
    for origin in ("a.org", "b.org", "c.org"):
        add(news, h("e1", origin=origin))
    assert summarise(news).distinct_sources == 3  # three publishers, each reporting one source
    # Copies of one event merged from accumulators keep the largest count.
    assert summarise(merge([acc, news])).distinct_sources == 5
    # Both counts travel too, so that a rule can say which it needs.
    assert [(s.distinct_origins, s.reported_sources) for s in map(summarise, (acc, news))] == [(1, 5), (3, 1)]


def test_a_hit_counts_the_deaths_its_indicator_asks_for_and_carries_the_span():
    observation = {
        "dedup_key": "record:ucdp-ged:1",
        "source_type": "CONFLICT_DATA",
        "fatalities": 60,
        "civilian_fatalities": 52,
        "distinct_sources": 4,
        "span_days": 31,
        "origin": "ucdp-ged",
        "id": "o1",
        "source_ids": ["ucdp-ged:1"],
        "event_time": 0,
    }
    assert hit(observation, 1.0).fatalities == 60
    civilians = hit(observation, 1.0, deaths="civilians")
    assert (civilians.fatalities, civilians.sources, civilians.span_days) == (52, 4, 31)


def test_an_event_known_only_to_a_month_is_kept_out_of_shorter_windows():
    from tocsin.pipelines.indicators.slices import _Spec

    def fits(size_s, span_days):
        return _Spec(WindowSpec(size_s, size_s), None).takes("rf1.armed_conflict", span_days)

    week, month = 7 * 86_400, 31 * 86_400
    assert fits(week, 1) and fits(week, 7) and fits(month, 31)
    assert not fits(week, 31)  # date_prec 4: a month-long span cannot be placed in one week
    assert not fits(month, 366)  # date_prec 5: nor a year in a month
