"""IndicatorSignals on the local streaming runner (Prism), driven by TestStream.

Panes: early (after a number of hits), on time (the watermark passes the window end), late within the
allowed lateness (the signal is updated, accumulating), too late (the runner would drop it: the Kafka
source sends such records to the dead-letter topic before they reach a window, see
tests/integration/test_indicator_pipeline.py). De-duplication: one event reported by several sources counts
once and its origins count as corroboration.
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tocsin.pipelines.indicators import load_catalogue
from tocsin.pipelines.indicators.normalise import from_incident, from_news
from tocsin.pipelines.indicators.transforms import IndicatorSignals
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.runners import streaming_options

pytestmark = pytest.mark.runner

DAY = 86_400
T0 = 1_605_225_600  # 2020-11-13T00:00:00Z, a window boundary for 1-day windows
CATALOGUE = load_catalogue()


def fight(n: int, at_s: float, country: str = "ETH", region: str | None = None) -> TimestampedValue:
    """A GDELT-like event data record coded CAMEO 190 (use conventional military force)."""
    observation = from_incident(
        {
            "id": f"gdelt2:{n}",
            "source": "gdelt2",
            "source_type": "EVENT_DATA",
            "event_time": int(at_s * 1000),
            "country": country,
            "admin1": region,
            "url": f"https://news{n % 3}.example.org/story/{n}",
            "event_codes": ["cameo:190", "cameo-base:190", "cameo-root:19"],
            "goldstein": -10.0,
        }
    )
    return TimestampedValue(observation, at_s)


def news(feed: str, n: int, title: str, at_s: float, country: str = "SDN") -> TimestampedValue:
    observation = from_news(
        {
            "id": f"{feed}:{n}",
            "source": feed,
            "title": title,
            "event_time": int(at_s * 1000),
            "country": country,
            "language": "en",
            "link": f"https://{feed}.example.org/{n}",
        }
    )
    return TimestampedValue(observation, at_s)


def panes(signals):
    return signals | beam.Map(
        lambda s: (
            s["indicator_id"],
            s["country"] if s["region"] is None else f"{s['country']}/{s['region']}",
            (s["window_start"] // 1000 - T0) / DAY,
            s["pane"],
            s["count"],
            s["distinct_sources"],
        )
    )


def test_a_window_fires_on_time_when_the_watermark_passes_its_end():
    stream = (
        TestStream()
        .add_elements([fight(1, T0 + 3600), fight(2, T0 + 7200, region="Tigray"), fight(3, T0 + DAY + 60)])
        .advance_watermark_to(T0 + DAY)  # day 0 is complete
        .add_elements([fight(4, T0 + DAY + 120)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(DAY, DAY)])
        assert_that(
            panes(signals),
            equal_to(
                [
                    ("rf1.armed_conflict", "ETH", 0, "ON_TIME", 2, 2),
                    ("rf1.armed_conflict", "ETH/Tigray", 0, "ON_TIME", 1, 1),
                    ("rf1.armed_conflict", "ETH", 1, "ON_TIME", 2, 2),
                ]
            ),
        )


def test_sliding_windows_cover_each_event_in_every_window_that_contains_it():
    stream = (
        TestStream()
        .add_elements([fight(1, T0 + 3600), fight(2, T0 + DAY + 3600)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(2 * DAY, DAY)], by_region=False)
        assert_that(
            panes(signals) | beam.Map(lambda t: (t[2], t[4])),
            equal_to([(-1, 1), (0, 2), (1, 1)]),
        )


def test_early_panes_fire_before_the_window_ends_and_accumulate():
    stream = (
        TestStream()
        .add_elements([fight(1, T0 + 60), fight(2, T0 + 120)])
        .advance_watermark_to(T0 + 3600)  # well before the window end: only the early trigger can fire
        .add_elements([fight(3, T0 + 7200)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(DAY, DAY)], early_count=2)
        assert_that(
            panes(signals) | beam.Map(lambda t: (t[3], t[4])),
            equal_to([("EARLY", 2), ("ON_TIME", 3)]),
        )


def test_late_data_within_the_allowed_lateness_updates_the_signal():
    stream = (
        TestStream()
        .add_elements([fight(1, T0 + 60)])
        .advance_watermark_to(T0 + DAY + 600)  # day 0 fired on time
        .add_elements([fight(2, T0 + 120)])  # late, but within 1 hour of lateness
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(DAY, DAY)], allowed_lateness_s=3600)
        assert_that(
            signals | beam.Map(lambda s: (s["pane"], s["pane_index"], s["count"], s["id"])),
            equal_to(
                [
                    ("ON_TIME", 0, 1, f"rf1.armed_conflict:ETH:{T0 * 1000}-{(T0 + DAY) * 1000}"),
                    ("LATE", 1, 2, f"rf1.armed_conflict:ETH:{T0 * 1000}-{(T0 + DAY) * 1000}"),
                ]
            ),
        )


def test_data_beyond_the_allowed_lateness_never_reaches_a_window():
    # Why the source must divert such records: the runner drops them without a trace.
    stream = (
        TestStream()
        .add_elements([fight(1, T0 + 60)])
        .advance_watermark_to(T0 + DAY + 7200)  # past the window end plus 1 hour of lateness
        .add_elements([fight(2, T0 + 120)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(DAY, DAY)], allowed_lateness_s=3600)
        # The runner may still close the window with a final pane, but the record is not in it.
        assert_that(
            signals
            | beam.Filter(lambda s: s["pane"] == "ON_TIME" or s["count"] != 1)
            | beam.Map(lambda s: s["count"]),
            equal_to([1]),
        )


def test_one_event_reported_by_several_sources_counts_once_with_its_corroboration():
    headline = "Thousands displaced as fighting spreads in Darfur"
    stream = (
        TestStream()
        .add_elements(
            [
                news("reliefweb", 1, headline, T0 + 600),
                news("emm", 7, f"{headline} - Reuters", T0 + 900),  # same headline, publisher suffix
                news("emm", 7, f"{headline} - Reuters", T0 + 900),  # the same item ingested twice
                news("emm", 8, "Thousands DISPLACED as fighting spreads in Darfur", T0 + 1200),
                news("emm", 9, "Aid convoy reaches the displaced in El Fasher", T0 + 1500),
            ]
        )
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=streaming_options([])) as p:
        signals = p | stream | IndicatorSignals(CATALOGUE, [WindowSpec(DAY, DAY)])
        assert_that(
            signals
            | beam.Filter(lambda s: s["indicator_id"] == "displacement.forced_displacement")
            | beam.Map(lambda s: (s["count"], s["distinct_sources"], sorted(s["evidence_ids"]))),
            equal_to([(2, 2, ["emm:7", "emm:9"])]),
        )
