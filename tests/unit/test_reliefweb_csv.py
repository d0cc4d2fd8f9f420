"""ReliefWeb listing CSV parser: real rows, both column namings, exact rejects and file-level errors."""

from __future__ import annotations

import importlib.util
import io
import json

import pytest

from tests.conftest import FIXTURES, ROOT
from tocsin.formats import reliefweb_csv
from tocsin.formats.records import MissingColumns, Reject
from tocsin.formats.reliefweb import parse_page
from tocsin.serde.avro import default_registry
from tocsin.serde.validate import validate

LISTING = FIXTURES / "reliefweb" / "South_Sudan_excerpt.csv"
INGESTED = 1_700_000_000_000
JAN_29_2014 = 1390953600000  # 2014-01-29T00:00:00Z
needs_langid = pytest.mark.skipif(
    importlib.util.find_spec("py3langid") is None, reason="py3langid is not installed"
)


def parsed(text: str, source: str = "listing.csv", country: str | None = None) -> list:
    return list(reliefweb_csv.parse_csv(io.StringIO(text), source, country, INGESTED))


def listing(country: str | None = None) -> dict[int, dict]:
    with LISTING.open(newline="", encoding="utf-8") as text:
        return dict(reliefweb_csv.parse_csv(text, LISTING.name, country, INGESTED))


def test_every_row_of_the_real_listing_is_a_valid_news_item():
    items = listing()
    assert len(items) == 29 and not [i for i in items.values() if isinstance(i, Reject)]
    schema = default_registry().get("NewsItem").parsed
    assert [validate(item, schema) for item in items.values()] == [[]] * 29
    assert items[2] == {
        "id": "reliefweb:633299",
        "source": "reliefweb",
        "feed_url": None,
        "guid": "633299",
        "link": "http://reliefweb.int/node/633299",
        "title": "South Sudan’s displaced need urgent help",
        "summary": None,
        "published": JAN_29_2014,
        "event_time": JAN_29_2014,
        "ingested_at": INGESTED,
        "language": items[2]["language"],  # detected: see the test below
        "authors": [],
        "categories": [],
        "entities": [],
        "country": None,  # the R export names no country, and none was given
        "latitude": None,
        "longitude": None,
        "attributes": {"row": "89"},
    }
    # A title with a line break: one line of text, the record at the line where it ends.
    assert items[28]["title"] == (
        "Remarks from Hilde F. Johnson Special Representative of UN Secretary- General and Head of United "
        "Nations Mission in South Sudan (UNMISS)"
    )
    assert items[31]["event_time"] == 126230400000  # 1974-01-01, the oldest report


@needs_langid
def test_the_language_comes_from_the_title():
    items = listing()
    assert (items[2]["language"], items[26]["language"]) == ("en", "fr")
    assert items[3]["language"] is None  # "Population Statistics Doro Mobileserver (as of 25-Jan-14)": unsure


def test_the_country_given_is_the_country_of_every_row_naming_none():
    assert {item["country"] for item in listing("ssd").values()} == {"SSD"}


def test_the_other_naming_with_country_and_score_columns():
    text = (
        "ID,Title,Created,URL,Score,Country\n"
        "633299,South Sudan’s displaced need urgent help,2014-01-29T10:20:00+00:00,"
        "https://reliefweb.int/node/633299,12.5,South Sudan\n"
        "633266,Report of the Secretary-General,2014-01-28T23:30:00-05:00,,3,caf\n"
        "633246,Anti-Balaka et Seleka,2014-01-29,,,\n"
    )
    first, second, third = (item for _, item in parsed(text, country="SSD"))
    assert (first["country"], first["attributes"], first["event_time"]) == (
        "SSD",
        {"score": "12.5"},
        JAN_29_2014,  # the day, not the time of day
    )
    assert first["link"] == "https://reliefweb.int/node/633299"
    # 23:30 at UTC-5 is the next day in UTC; no URL: the report's ReliefWeb node.
    assert (second["country"], second["event_time"]) == ("CAF", JAN_29_2014)
    assert second["link"] == "https://reliefweb.int/node/633266"
    assert (third["country"], third["attributes"]) == ("SSD", {})  # empty country: the one given


def test_a_listing_row_and_the_api_report_are_one_record_id():
    doc = json.loads((ROOT / "sample_data" / "news" / "reliefweb_v1_reports_page1_2020-09.json").read_text())
    [(_, from_api), *_] = parse_page(doc)[0]
    row = f"id,title,created\n3670885,{from_api['title']},2020-09-17\n"
    [(_, from_listing)] = parsed(row)
    assert from_listing["id"] == from_api["id"] == "reliefweb:3670885"
    assert from_listing["guid"] == from_api["guid"]


def test_a_bad_row_is_rejected_with_every_error_and_its_line():
    text = (
        '"","data.list.id","title","date.created","rw.url"\n'
        '"1","633299","fine",2014-01-29,"http://reliefweb.int/node/633299"\n'
        '"2","node-1","  ",someday,"reliefweb.int/node/1"\n'
        '"3","","x",2014-13-01,""\n'
    )
    _, (line, first), (_, second) = parsed(text)
    assert isinstance(first, Reject) and (line, first.position, first.reason) == (3, 3, "parse-error")
    assert first.errors == [
        "line 3: data.list.id: 'node-1' is not a ReliefWeb report id",
        "line 3: title: required value missing",
        "line 3: date.created: 'someday' is not a date",
        "line 3: rw.url: 'reliefweb.int/node/1' is not an http(s) URL",
    ]
    assert second.errors == [
        "line 4: data.list.id: required value missing",
        "line 4: date.created: '2014-13-01' is not a date",
    ]


def test_an_unknown_country_name_is_an_error():
    [(_, reject)] = parsed("id,title,created,country\n1,Floods,2014-01-29,Narnia\n")
    assert reject.errors == ["line 2: country: 'Narnia' is not a country name or ISO 3166-1 alpha-3 code"]


def test_a_row_with_more_values_than_columns_is_rejected():
    [(_, reject)] = parsed("id,title,created\n1,Floods, rains,2014-01-29\n")
    assert (reject.position, reject.errors) == (2, ["line 2: 4 values for 3 columns"])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "id,created,url",
            "South_Sudan.csv: missing required column(s): title (the header has: id, created, url)",
        ),
        (
            '"","data.list.id","title","rw.url"',
            "South_Sudan.csv: missing required column(s): date.created or created "
            '(the header has: "", data.list.id, title, rw.url)',
        ),
        (
            "",
            "South_Sudan.csv: missing required column(s): data.list.id or id, title, date.created or created "
            "(the file is empty)",
        ),
    ],
)
def test_a_missing_column_is_one_error_for_the_file_before_any_row(header, message):
    with pytest.raises(MissingColumns) as raised:
        reliefweb_csv.parse_csv(io.StringIO(header + "\n1,2,3\n" if header else ""), "South_Sudan.csv")
    assert str(raised.value) == message


def test_the_country_given_must_be_an_iso3_code():
    with pytest.raises(ValueError) as raised:
        reliefweb_csv.parse_csv(io.StringIO("id,title,created\n"), "x.csv", country="South Sudan")
    assert str(raised.value) == "'South Sudan' is not an ISO 3166-1 alpha-3 country code"


def test_replays_go_oldest_first_and_number_in_that_order():
    items = reliefweb_csv.in_time_order(listing().items())
    assert [n for n, _ in items] == list(range(1, 30))
    times = [item["event_time"] for _, item in items]
    assert times == sorted(times) and times[0] == 126230400000
    # Rejects come first, keeping their line as their position.
    mixed = reliefweb_csv.in_time_order(parsed("id,title,created\n2,b,2014-01-29\n1,a,2013-01-01\nx,,\n"))
    assert [(n, getattr(i, "position", None) or i["guid"]) for n, i in mixed] == [(1, 4), (2, "1"), (3, "2")]
