"""RSS/Atom and ReliefWeb API parsers on the real files in tests/fixtures/data/news (and the Guardian feed
of the shared data, which is not committed): counts and exact fields."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from tests import conftest
from tocsin.formats.feeds import parse_feed
from tocsin.formats.records import Reject
from tocsin.formats.reliefweb import parse_page
from tocsin.formats.text import detect_language, feed_id_for, html_to_text, normalise_language
from tocsin.serde.avro import default_registry
from tocsin.serde.validate import validate

NEWS = Path(conftest.DATA) / "news"
RSS = NEWS / "rss_atom"
SHARED_RSS = Path(conftest.SHARED) / "news" / "rss_atom"
RELIEFWEB_JSON = NEWS / "reliefweb_api_json" / "reliefweb_v1_reports_page1_2020-09.json"
INGESTED = 1_700_000_000_000
# Language detection needs py3langid; without it the parsers give None where the feed names no language.
LANGID = importlib.util.find_spec("py3langid") is not None
needs_langid = pytest.mark.skipif(not LANGID, reason="py3langid is not installed")

EMM = "emm_newsbrief_en_2022-06-21.rss.xml"
GUARDIAN = "guardian_us_edition_2018-01-31.rss.xml"
RELIEFWEB_RSS = "reliefweb_updates_ukraine_2020-09-17.rss.xml"
FEED_URLS = {
    EMM: "https://emm.newsbrief.eu/rss/rss?type=rtn&language=en",
    GUARDIAN: "https://www.theguardian.com/us/rss",
    RELIEFWEB_RSS: "https://reliefweb.int/updates/rss.xml?legacy-river=country/ukr",
}


def guardian(*values):
    """Test parameters on the Guardian feed: its content is copyrighted, so it is read from the shared data
    and the case skips without it."""
    return pytest.param(GUARDIAN, *values, marks=conftest.needs_shared_data)


def parsed(name: str) -> list[dict]:
    url = FEED_URLS[name]
    path = (SHARED_RSS if name == GUARDIAN else RSS) / name
    items = parse_feed(path.read_bytes(), feed_id_for(url), url, INGESTED)
    assert [position for position, _ in items] == list(range(1, len(items) + 1))
    return [item for _, item in items]


def test_every_committed_file_is_covered():
    assert sorted(p.name for p in RSS.iterdir()) == sorted(set(FEED_URLS) - {GUARDIAN})


@conftest.needs_shared_data
def test_every_shared_file_is_covered():
    assert sorted(p.name for p in SHARED_RSS.iterdir()) == sorted(FEED_URLS)


@pytest.mark.parametrize(("name", "count"), [(EMM, 3), guardian(55), (RELIEFWEB_RSS, 5)])
def test_item_counts_and_every_record_is_a_valid_news_item(name, count):
    items = parsed(name)
    assert len(items) == count
    assert not [item for item in items if isinstance(item, Reject)]
    schema = default_registry().get("NewsItem").parsed
    assert [validate(item, schema) for item in items] == [[]] * count
    assert len({item["id"] for item in items}) == count


@pytest.mark.parametrize(
    ("name", "index", "field", "expected"),
    [
        (EMM, 0, "id", "emm.newsbrief.eu-rss-rss-type-rtn-language-en:c4acea3653321eba"),
        (EMM, 0, "source", "emm.newsbrief.eu-rss-rss-type-rtn-language-en"),
        (EMM, 0, "guid", "heraldsun-8360f140d629f2d582d35fd2c9c5a627.20220621.en"),
        (EMM, 0, "title", "RBA Governor says he ‘doesn’t see a recession on the horizon’"),
        (EMM, 0, "published", 1655775120000),  # Tue, 21 Jun 2022 03:32:00 +0200
        (EMM, 0, "event_time", 1655775120000),
        (EMM, 0, "ingested_at", INGESTED),
        (EMM, 0, "language", "en"),  # iso:language
        (EMM, 0, "summary", None),
        (EMM, 0, "latitude", -35.3499),
        (EMM, 0, "longitude", 149.042),
        (EMM, 0, "categories", []),
        (EMM, 1, "categories", ["ConsumerPolicy", "CoronavirusInfection"]),
        (EMM, 1, "latitude", 28.5687),
        (EMM, 1, "longitude", 77.2168),
        (EMM, 1, "country", None),  # the source's country="IN" is the publisher's, not the story's
        (
            EMM,
            2,
            "link",
            "https://www.longbeachstar.com/news/272592709/top-saints-laud-pm-modi-in-karnataka-mysuru",
        ),
        guardian(0, "title", "Trump State of the Union address promised unity but emphasized discord"),
        guardian(0, "authors", ["David Smith in Washington"]),
        guardian(0, "language", "en"),  # en-gb
        guardian(0, "published", 1517383565000),  # Wed, 31 Jan 2018 07:26:05 GMT
        guardian(
            0,
            "categories",
            [
                "Donald Trump",
                "State of the Union address",
                "US news",
                "US politics",
                "Democrats",
                "Republicans",
                "US Congress",
            ],
        ),
        guardian(0, "entities", []),
        guardian(0, "latitude", None),
        guardian(0, "attributes", {"feed_title": "The Guardian"}),
        guardian(54, "authors", []),
        guardian(
            54,
            "summary",
            "Worried that fitness obsessives were making yoga too commercial, photographer "
            "Andy Richter went in search of the true spiritual path – from mass retreats in "
            "America to caves in India\nContinue reading...",
        ),
        (
            RELIEFWEB_RSS,
            0,
            "guid",
            "https://reliefweb.int/report/ukraine/ukraine-drc-ddg-legal-alert-issue-55-august-2020-enruuk",
        ),
        (RELIEFWEB_RSS, 0, "link", "https://reliefweb.int/report/ukraine/ukraine-drc-ddg"),
        (RELIEFWEB_RSS, 0, "country", "UKR"),  # "Country: Ukraine" in the description
        (RELIEFWEB_RSS, 0, "authors", ["Danish Refugee Council", "Danish Demining Group"]),
        (RELIEFWEB_RSS, 0, "published", 1600327465000),  # Thu, 17 Sep 2020 07:24:25 +0000
        (
            RELIEFWEB_RSS,
            0,
            "categories",
            [
                "Ukraine",
                "Danish Refugee Council",
                "Danish Demining Group",
                "Health",
                "Protection and Human Rights",
                "News and Press Release",
                "Epidemic",
            ],
        ),
        (
            RELIEFWEB_RSS,
            0,
            "attributes",
            {
                "countries": "Ukraine",
                "enclosure": "https://reliefweb.int/sites/reliefweb.int/files/resources/08_2020_drc-ddg_legal_alert_eng.pdf",
                "feed_title": "ReliefWeb - Updates",
                "source_title": "ReliefWeb - Updates",
                "source_url": "https://reliefweb.int/updates/rss.xml",
            },
        ),
        (RELIEFWEB_RSS, 3, "authors", ["UN Development Programme"]),
        (RELIEFWEB_RSS, 4, "country", "UKR"),
    ],
)
def test_exact_fields(name, index, field, expected):
    assert parsed(name)[index][field] == expected


@pytest.mark.parametrize("name", [EMM, guardian(), RELIEFWEB_RSS])
def test_ids_are_the_feed_id_and_a_digest_of_the_guid(name):
    for item in parsed(name):
        digest = hashlib.sha256(item["guid"].encode()).hexdigest()[:16]
        assert item["id"] == f"{feed_id_for(FEED_URLS[name])}:{digest}"


def test_reliefweb_rss_summary_has_its_markup_removed():
    summary = parsed(RELIEFWEB_RSS)[0]["summary"]
    assert summary.splitlines()[:4] == [
        "Country: Ukraine",
        "Sources: Danish Refugee Council, Danish Demining Group",
        "Please refer to the attached files.",
        "1. COVID-19 Legislative Measures: A Shift from Easing Quarantine Measures to Reinforcing Them",
    ]
    assert "<" not in summary and "&ndash;" not in summary and "not possible – observation" in summary


def test_emm_entities_each_once_in_order_with_the_feeds_ids():
    items = parsed(EMM)
    assert items[0]["entities"] == [
        {"name": "Reserve Bank", "type": None, "id": "12850"},
        {"name": "Bank of Australia", "type": None, "id": "2561290"},
        {"name": "Philip Lowe", "type": None, "id": "16351"},
    ]
    assert [e["name"] for e in items[1]["entities"]] == [
        "BIS",
        "Kumar Singh",
        "Rohit Kumar Singh",
        "District Commission",
        "Piyush Goyal",
        "Anupam Mishra",
        "Secretary Department",
        "India News",
        "Coronavirus",
        "Rahul Gandhi",
        "Also Read",
    ]
    assert [len(item["entities"]) for item in items] == [3, 11, 6]
    assert items[1]["attributes"]["source_country"] == "IN"
    assert items[1]["attributes"]["keywords"].startswith("district commissions,digital media,")


MALFORMED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><language>fr</language>
<item><title>Des milliers de civils fuient</title><link>https://example.org/a</link></item>
<item><description>Sans titre ni lien</description><category>x</category></item>
</channel></rss>"""


def test_an_item_without_title_and_link_is_rejected_with_the_reason():
    items = parse_feed(MALFORMED, "example", "https://example.org/rss", INGESTED)
    assert [position for position, _ in items] == [1, 2]
    assert items[0][1]["title"] == "Des milliers de civils fuient" and items[0][1]["language"] == "fr"
    reject = items[1][1]
    assert isinstance(reject, Reject)
    assert (reject.reason, reject.errors, reject.position) == (
        "parse-error",
        ["item 2: no title and no link"],
        2,
    )
    assert json.loads(reject.raw)["summary"] == "Sans titre ni lien"


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:georss="http://www.georss.org/georss" xml:lang="es-ES">
  <title>Noticias</title><id>urn:feed</id><updated>2024-03-02T10:00:00Z</updated>
  <entry>
    <title>Miles de civiles huyen de los combates</title>
    <id>urn:uuid:1</id><link href="https://example.org/1"/>
    <updated>2024-03-02T09:30:00+01:00</updated>
    <author><name>Ana</name></author>
    <summary type="html">&lt;p&gt;Primer p&amp;aacute;rrafo&lt;/p&gt;&lt;p&gt;Segundo&lt;/p&gt;</summary>
    <georss:point>12.5 -3.25</georss:point>
  </entry>
</feed>"""


def test_atom_entry_language_from_xml_lang_and_time_from_updated():
    [(_, item)] = parse_feed(ATOM, "noticias", None, INGESTED)
    assert item["id"] == f"noticias:{hashlib.sha256(b'urn:uuid:1').hexdigest()[:16]}"
    assert (item["language"], item["published"], item["event_time"]) == ("es", 1709368200000, 1709368200000)
    assert (item["summary"], item["authors"], item["latitude"], item["longitude"]) == (
        "Primer párrafo\nSegundo",
        ["Ana"],
        12.5,
        -3.25,
    )


@needs_langid
def test_language_is_detected_when_the_feed_gives_none_and_event_time_falls_back_to_ingestion():
    feed = b"""<rss version="2.0"><channel><title>t</title>
    <item><title>Des milliers de civils fuient les combats dans le nord du pays</title>
    <guid isPermaLink="false">g1</guid></item></channel></rss>"""
    [(_, item)] = parse_feed(feed, "f", None, INGESTED)
    assert (item["language"], item["published"], item["event_time"], item["link"]) == (
        "fr",
        None,
        INGESTED,
        None,
    )


@pytest.mark.parametrize(
    ("markup", "text"),
    [
        ("<p>a &amp; b</p><p>c<br>d</p>", "a & b\nc\nd"),
        ("x <script>alert(1)</script><style>p{}</style>y", "x y"),
        ("<ul><li>one</li><li> two  words </li></ul>", "one\ntwo words"),
        ("<b>5 &lt; 6</b>", "5 < 6"),
        ("", None),
        ("<p> </p>", None),
    ],
)
def test_html_to_text(markup, text):
    assert html_to_text(markup) == text


@pytest.mark.parametrize(
    ("value", "code"),
    [("en-gb", "en"), ("EN_us", "en"), ("fr", "fr"), ("eng", None), ("", None), (None, None)],
)
def test_normalise_language(value, code):
    assert normalise_language(value) == code


@needs_langid
def test_detect_language_abstains_on_short_text():
    assert detect_language("Ok") is None
    assert detect_language("Miles de civiles huyen de los combates en el norte del país") == "es"


@pytest.mark.parametrize(
    ("url", "feed_id"),
    [
        ("https://www.theguardian.com/us/rss", "www.theguardian.com-us-rss"),
        (
            "https://reliefweb.int/updates/rss.xml?legacy-river=country/ukr",
            "reliefweb.int-updates-rss.xml-legacy-river-country-ukr",
        ),
        ("http://127.0.0.1:8080/feed.xml", "127.0.0.1-8080-feed.xml"),
        (
            "https://example.org/" + "a" * 100,
            "example.org-"
            + "a" * 51
            + "-"
            + hashlib.sha256(("example.org/" + "a" * 100).encode()).hexdigest()[:16],
        ),
    ],
)
def test_feed_id_is_stable_and_safe(url, feed_id):
    assert feed_id_for(url) == feed_id


# --- ReliefWeb API ---------------------------------------------------------------------------------------


def reliefweb_doc() -> dict:
    return json.loads(RELIEFWEB_JSON.read_text())


def test_reliefweb_page_counts_fields_and_no_next_page_past_the_total():
    items, following = parse_page(reliefweb_doc(), ingested_at=INGESTED)
    assert following is None  # totalCount 4 < next offset 10
    assert [position for position, _ in items] == [1, 2, 3, 4]
    records = [item for _, item in items]
    assert [r["id"] for r in records] == [
        "reliefweb:3670885",
        "reliefweb:3670541",
        "reliefweb:3670672",
        "reliefweb:3670318",
    ]
    schema = default_registry().get("NewsItem").parsed
    assert [validate(r, schema) for r in records] == [[]] * 4
    first = records[0]
    assert first == {
        "id": "reliefweb:3670885",
        "source": "reliefweb",
        "feed_url": "https://api.reliefweb.int/v1/reports?appname=thedeep.io",
        "guid": "3670885",
        "link": "https://reliefweb.int/report/nepal/nepal-makes-progress-human-capital-development",
        "title": "Nepal makes progress in human capital development",
        "summary": None,
        "published": 1600300800000,  # 2020-09-17T00:00:00+00:00
        "event_time": 1600300800000,
        "ingested_at": INGESTED,
        "language": "en" if LANGID else None,  # detected: this query asked for no language field
        "authors": ["World Bank"],
        "categories": [],
        "entities": [],
        "country": None,
        "latitude": None,
        "longitude": None,
        "attributes": {
            "api_href": "https://api.reliefweb.int/v1/reports/3670885",
            "source_shortnames": "World Bank",
        },
    }
    assert records[1]["authors"] == ["International Organization for Migration"]
    assert records[1]["attributes"]["files"] == (
        "https://reliefweb.int/sites/reliefweb.int/files/resources/roap_covid_response_sitrep_18.pdf"
    )
    assert (
        records[3]["title"]
        == "Asia and the Pacific: Weekly Regional Humanitarian Snapshot (8 - 14 September 2020)"
    )


def test_reliefweb_next_page_when_more_remain():
    doc = reliefweb_doc() | {"totalCount": 25}
    assert parse_page(doc)[1] == "https://api.reliefweb.int/v1/reports?offset=10&limit=10"
    assert parse_page(doc | {"data": []})[1] is None


def test_reliefweb_fields_asked_for_country_language_themes():
    doc = reliefweb_doc()
    fields = doc["data"][0]["fields"]
    fields["primary_country"] = {"iso3": "npl", "name": "Nepal"}
    fields["country"] = [{"iso3": "ind", "name": "India"}, {"iso3": "npl", "name": "Nepal", "primary": True}]
    fields["language"] = [{"code": "fr", "name": "French"}]
    fields["theme"] = [{"name": "Health"}, {"name": "Education"}]
    fields["disaster_type"] = [{"name": "Earthquake"}]
    fields["body-html"] = "<p>Un rapport</p>"
    fields["date"] = {"created": "2020-09-16T12:00:00+02:00"}
    record = parse_page(doc, ingested_at=INGESTED)[0][0][1]
    assert (
        record["country"],
        record["language"],
        record["categories"],
        record["summary"],
        record["published"],
    ) == ("NPL", "fr", ["Health", "Education", "Earthquake"], "Un rapport", 1600250400000)
    assert record["attributes"]["countries"] == "IND,NPL"
    del fields["primary_country"]
    assert parse_page(doc)[0][0][1]["country"] == "NPL"  # the country flagged primary


def test_reliefweb_report_without_title_is_rejected():
    doc = copy.deepcopy(reliefweb_doc())
    del doc["data"][2]["fields"]["title"]
    doc["data"][3] = "nonsense"
    items, _ = parse_page(doc, ingested_at=INGESTED)
    rejects = [item for _, item in items if isinstance(item, Reject)]
    assert [(r.reason, r.errors, r.position) for r in rejects] == [
        ("parse-error", ["data[2]: fields.title: required value missing"], 3),
        ("parse-error", ["data[3]: data item is not an object"], 4),
    ]
    assert json.loads(rejects[0].raw)["id"] == "3670672"
