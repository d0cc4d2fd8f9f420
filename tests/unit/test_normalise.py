"""Raw records -> observations: fields, dedup keys, origins, errors; on real UCDP and GDELT rows."""

from __future__ import annotations

import io
import json

import pytest

from tests.conftest import DATA, FIXTURES
from tocsin.formats.gdelt import parse_text, read_export
from tocsin.formats.ucdp import parse_csv
from tocsin.pipelines.indicators.normalise import (
    NormaliseError,
    as_observation,
    dedup_key,
    from_incident,
    from_news,
    normalise,
    observation_id,
    origin_of,
    title_fingerprint,
)
from tocsin.serde.avro import default_registry, encode

RECORDS = FIXTURES / "records"


def fixture(name: str) -> dict:
    return json.loads((RECORDS / f"{name}.json").read_text())


def first_parsed(rows):
    return next(item for _, item in rows if isinstance(item, dict))


def test_a_ucdp_event_keeps_its_place_deaths_violence_type_and_record_id():
    text = (DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv").read_text(encoding="utf-8")
    report = first_parsed(parse_csv(io.StringIO(text)))
    obs = from_incident(report)
    assert obs["source_ids"] == [report["id"]]
    assert obs["source_type"] == "CONFLICT_DATA"
    assert obs["country"] == report["country"] and len(obs["country"]) == 3
    assert obs["admin1"] == report["admin1"]
    assert (obs["latitude"], obs["longitude"]) == (report["latitude"], report["longitude"])
    assert obs["fatalities"] == report["fatalities"]["best"]
    assert obs["violence_type"] == report["violence_type"]
    assert obs["event_time"] == report["event_time"]
    assert obs["dedup_key"] == f"record:{report['id']}"
    assert obs["id"] == observation_id(obs["dedup_key"])
    assert obs["origin"] == origin_of("ucdp-ged", report["url"])


def test_a_gdelt_event_keeps_its_cameo_codes_goldstein_and_publisher():
    files = sorted((DATA / "gdelt2" / "export_15min").glob("*.export.CSV"))
    report = first_parsed(parse_text(read_export(files[0])))
    obs = from_incident(report)
    assert obs["event_codes"] == report["event_codes"]
    assert obs["goldstein"] == report["goldstein"]
    assert obs["fatalities"] == 0  # GDELT counts no deaths
    assert obs["dedup_key"] == f"record:{report['id']}"  # GLOBALEVENTID: one event, however many articles
    assert "." in obs["origin"] and not obs["origin"].startswith("www.")


def test_observations_are_valid_avro_records():
    schema = default_registry().get("Observation")
    for obs in (from_incident(fixture("IncidentReport")), from_news(fixture("NewsItem"))):
        assert encode(schema, as_observation(obs))  # raises with every error if a field is wrong


def test_a_news_item_is_keyed_by_country_and_headline_fingerprint():
    item = fixture("NewsItem")
    obs = from_news(item)
    assert obs["source_type"] == "NEWS"
    assert obs["text"] == item["summary"]
    assert obs["url"] == item["link"]
    assert obs["origin"] == "reliefweb.int"
    assert obs["dedup_key"] == "title:UKR:" + title_fingerprint(item["title"])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Troops attack the village of Kumba", "troops attack village of Kumba"),
        ("Thousands flee fighting in Darfur - Reuters", "Thousands flee fighting in Darfur | Al Jazeera"),
        ("Des milliers de déplacés à Bunia", "Des milliers de DEPLACES a Bunia"),
        ("Army, rebels clash in Tigray", "Rebels, army clash in Tigray"),
    ],
)
def test_near_identical_headlines_share_a_fingerprint(a, b):
    assert title_fingerprint(a) == title_fingerprint(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("12 killed in Bunia attack", "21 killed in Bunia attack"),
        ("Troops attack village", "Troops leave village"),
    ],
)
def test_different_headlines_do_not(a, b):
    assert title_fingerprint(a) != title_fingerprint(b)


def test_a_title_that_is_all_suffix_is_kept_whole():
    assert title_fingerprint("Update - Situation report 12 for the Kasai region") != ""


def test_structured_sources_never_merge_on_titles():
    assert dedup_key("EVENT_DATA", "gdelt2:1", "SDN", "Same title") == "record:gdelt2:1"
    assert dedup_key("NEWS", "rss:1", "SDN", "Same title") == dedup_key(
        "FIELD_MONITOR", "x:2", "SDN", "same TITLE"
    )
    assert dedup_key("NEWS", "rss:1", "SDN", "Same title") != dedup_key("NEWS", "rss:1", "TCD", "Same title")
    assert dedup_key("NEWS", "rss:1", None, "the of") == "record:rss:1"  # nothing significant left


def test_origin_is_the_publisher_host_else_the_connector():
    assert origin_of("gdelt2", "https://www.bbc.co.uk/news/1") == "bbc.co.uk"
    assert origin_of("ucdp-ged", None) == "ucdp-ged"
    assert origin_of("intake", "not a url") == "intake"


def test_missing_fields_are_all_reported():
    with pytest.raises(NormaliseError) as raised:
        from_news({"id": "x:1", "source": "", "event_time": None})
    assert raised.value.errors == ["source: missing", "event_time: missing", "title: missing"]
    assert raised.value.reason == "normalise-error"


def test_normalise_dispatches_on_the_schema_name():
    assert normalise("NewsItem", fixture("NewsItem"))["source_type"] == "NEWS"
    with pytest.raises(NormaliseError, match="no normaliser for Alert records"):
        normalise("Alert", {})


def test_what_a_source_says_of_itself_is_kept():
    """UCDP's own count of sources, the civilians among the deaths (any type of violence), the span."""
    report = {
        "id": "ucdp-ged:7",
        "source": "ucdp-ged",
        "source_type": "CONFLICT_DATA",
        "event_time": 1_356_998_400_000,  # 2013-01-01
        "violence_type": 1,
        "fatalities": {"best": 60, "low": 50, "high": 70, "civilians": 52},
        "num_sources": 4,
        "attributes": {"date_end": "2013-01-31 00:00:00.000"},
    }
    obs = from_incident(report)
    assert (obs["fatalities"], obs["civilian_fatalities"], obs["distinct_sources"]) == (60, 52, 4)
    assert obs["span_days"] == 31
    exact = from_incident({**report, "num_sources": None, "attributes": {}})
    assert (exact["distinct_sources"], exact["span_days"]) == (1, 1)


def test_deaths_a_report_states_in_words_become_its_fatalities():
    news = {"id": "rw:1", "source": "reliefweb", "event_time": 0, "title": "Fighting kills 37 in Jonglei"}
    assert from_news(news)["fatalities"] == 37
    assert from_news({**news, "title": "Cholera outbreak kills 27"})["fatalities"] == 0
    report = {"id": "intake:1", "source": "intake", "source_type": "FIELD_MONITOR", "event_time": 0}
    assert from_incident({**report, "title": "Militia attack: 12 villagers killed"})["fatalities"] == 12
    # A count the source gives is kept as given, even where its words say another number.
    counted = {**report, "title": "12 killed", "fatalities": {"best": 9}}
    assert from_incident(counted)["fatalities"] == 9


def test_an_aggregators_report_is_its_publishers():
    """ReliefWeb republishes: two organisations' reports of one event are two sources, not one host."""
    report = {"id": "reliefweb:1", "source": "reliefweb", "event_time": 0, "title": "Attack on Bor",
              "link": "https://reliefweb.int/report/south-sudan/attack-bor",
              "authors": ["UN Mission in South Sudan"]}  # fmt: skip
    assert from_news(report)["origin"] == "un mission in south sudan"
    assert from_news({**report, "authors": ["OCHA"]})["origin"] == "ocha"
    assert from_news({**report, "authors": []})["origin"] == "reliefweb.int"  # publisher unknown: the host
    direct = {**report, "link": "https://www.unmissions.org/attack-bor", "authors": ["UNMISS"]}
    assert from_news(direct)["origin"] == "unmissions.org"  # a publisher's own site is its own origin


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"country": "ZZZ"}, "country: 'ZZZ' is not an ISO 3166-1 alpha-3 code"),
        ({"latitude": 999.0}, "latitude: 999.0 is outside -90..90"),
        ({"longitude": -180.5}, "longitude: -180.5 is outside -180..180"),
        (
            {"event_time": -62_135_596_800_000},
            "event_time: -62135596800000 ms is before 1900 or more than a day ahead",
        ),
        (
            {"event_time": 4_102_444_800_000},
            "event_time: 4102444800000 ms is before 1900 or more than a day ahead",
        ),
    ],
)
def test_schema_valid_nonsense_is_a_normalise_error_with_the_reason(change, error):
    record = {"id": "x:1", "source": "intake", "source_type": "FIELD_MONITOR",
              "event_time": 1_600_000_000_000, "country": "SDN", "latitude": 13.5, "longitude": 25.3,
              "title": "t"} | change  # fmt: skip
    with pytest.raises(NormaliseError) as caught:
        normalise("IncidentReport", record)
    assert caught.value.errors == [error]
    assert caught.value.reason == "normalise-error"  # the dead letter's reason, as every normalise error


def test_kosovo_and_a_record_without_a_place_are_not_refused():
    base = {"id": "x:1", "source": "intake", "event_time": 1_600_000_000_000, "title": "t"}
    assert normalise("IncidentReport", base | {"country": "XKX"})["country"] == "XKX"
    assert normalise("NewsItem", base)["country"] is None
