"""One file reader for replays: each format is recognised from a committed file, and refused files say why."""

from __future__ import annotations

import collections
import shutil
import zipfile

import pytest

from tests.conftest import FIXTURES, ROOT
from tocsin.formats.files import ACCEPTED, UnknownFormat, detect, read_records
from tocsin.formats.records import BadFile, MissingColumns, Reject

SAMPLES = ROOT / "sample_data"
UCDP_23_1 = SAMPLES / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv"
GED_SYRIA = FIXTURES / "ucdp" / "ged_syria_19_1_excerpt.csv"
LISTING = FIXTURES / "reliefweb" / "South_Sudan_excerpt.csv"
GDELT_DIR = SAMPLES / "gdelt2"
GDELT_FILE = GDELT_DIR / "20201115090000.export.CSV"
RELIEFWEB_JSON = SAMPLES / "news" / "reliefweb_v1_reports_page1_2020-09.json"
RSS = SAMPLES / "news" / "reliefweb_updates_ukraine_2020-09-17.rss.xml"
EMM = SAMPLES / "news" / "emm_newsbrief_en_2022-06-21.rss.xml"


def summary(path, country=None) -> tuple[set, int, collections.Counter]:
    """(source labels, records, schemas) of everything read from the path; no Reject expected."""
    reads = list(read_records(path, country))
    assert not [r for r in reads if isinstance(r.item, Reject)]
    return {r.source for r in reads}, len(reads), collections.Counter(r.schema for r in reads)


@pytest.mark.parametrize(
    ("path", "fmt", "schema"),
    [
        (UCDP_23_1, "ucdp-ged-csv", "IncidentReport"),
        (GED_SYRIA, "ucdp-ged-csv", "IncidentReport"),
        (LISTING, "reliefweb-listing-csv", "NewsItem"),
        (GDELT_FILE, "gdelt2-export", "IncidentReport"),
        (RELIEFWEB_JSON, "reliefweb-api-json", "NewsItem"),
        (RSS, "rss-atom", "NewsItem"),
    ],
)
def test_each_format_is_recognised(path, fmt, schema):
    assert (detect(path).name, detect(path).schema) == (fmt, schema)


def test_csv_files_are_told_apart_by_their_header():
    assert summary(UCDP_23_1) == ({UCDP_23_1.name}, 300, {"IncidentReport": 300})
    assert summary(GED_SYRIA) == ({GED_SYRIA.name}, 21, {"IncidentReport": 21})
    labels, count, schemas = summary(LISTING, country="SSD")
    assert (labels, count, schemas) == ({LISTING.name}, 29, {"NewsItem": 29})
    first = next(read_records(LISTING, "SSD"))
    assert (first.position, first.item["id"], first.item["country"]) == (2, "reliefweb:633299", "SSD")


def test_a_gdelt_directory_zip_and_file():
    labels, count, schemas = summary(GDELT_DIR)
    assert len(labels) == 4 and count == 931 and schemas == {"IncidentReport": 931}
    assert summary(GDELT_FILE)[1] == sum(1 for line in GDELT_FILE.read_text().splitlines() if line.strip())


def test_a_zipped_gdelt_export(tmp_path):
    zipped = tmp_path / f"{GDELT_FILE.name}.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.write(GDELT_FILE, arcname=GDELT_FILE.name)
    assert detect(zipped).name == "gdelt2-export"
    assert summary(zipped)[1] == summary(GDELT_FILE)[1]


def test_saved_api_pages_and_feeds(tmp_path):
    assert summary(RELIEFWEB_JSON) == ({RELIEFWEB_JSON.name}, 4, {"NewsItem": 4})
    assert summary(RSS)[1:] == (5, {"NewsItem": 5})
    first = next(read_records(RSS))
    assert first.item["source"] == "reliefweb-updates-ukraine-2020-09-17.rss.xml"  # the file names the feed
    assert first.item["country"] == "UKR"
    for suffix in (".rss", ".atom"):
        copy = shutil.copy(EMM, tmp_path / f"emm{suffix}")
        assert summary(copy)[1:] == (3, {"NewsItem": 3})


def test_an_unknown_format_names_the_file_and_the_formats_accepted(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with pytest.raises(UnknownFormat) as raised:
        list(read_records(notes))
    assert str(raised.value) == f"notes.txt: unknown format; accepted: {ACCEPTED}"
    assert ACCEPTED == (
        "UCDP GED CSV (a type_of_violence column), ReliefWeb listing CSV (title and date.created or created "
        "columns), GDELT 2.0 exports (.export.CSV[.zip] or a directory of them), ReliefWeb API JSON (.json), "
        "RSS/Atom (.xml, .rss, .atom)"
    )


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("other.csv", "a,b\n1,2\n", f"other.csv: a CSV file of no known layout; accepted: {ACCEPTED}"),
        ("empty.csv", "", f"empty.csv: an empty CSV file; accepted: {ACCEPTED}"),
        ("page.json", "[1, 2]", 'page.json: not a ReliefWeb API response (no "data" list)'),
        (
            "page.json",
            "{",
            "page.json: not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))",
        ),
        ("feed.xml", "<html><body>gone</body></html>", None),
        ("x.export.CSV.zip", "not a zip", "x.export.CSV.zip: not a zip archive (File is not a zip file)"),
        (
            "latin1.csv",
            b"id,title,created\n1,caf\xe9,2014-01-29\n",
            "latin1.csv: not UTF-8 text (invalid continuation byte)",
        ),
        (
            "ucdp.csv",
            "id,type_of_violence,best\n",
            "ucdp.csv: missing required column(s): date_start, "
            "country_id or country (the header has: id, type_of_violence, best)",
        ),
    ],
)
def test_a_file_that_cannot_be_read_is_one_error(tmp_path, name, content, message):
    path = tmp_path / name
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    with pytest.raises(BadFile) as raised:
        list(read_records(path))
    if message is None:  # feedparser's words for a non-feed vary with its version: the start is ours
        assert str(raised.value).startswith("feed.xml: not an RSS or Atom feed (")
    else:
        assert str(raised.value) == message
    assert "\n" not in str(raised.value)


def test_a_listing_without_its_id_column_is_recognised_then_refused(tmp_path):
    path = tmp_path / "South_Sudan.csv"
    path.write_text("title,created,url\nFloods,2014-01-29,\n")
    assert detect(path).name == "reliefweb-listing-csv"  # a title and a date: a listing
    with pytest.raises(MissingColumns) as raised:
        list(read_records(path))
    assert str(raised.value) == (
        "South_Sudan.csv: missing required column(s): data.list.id or id "
        "(the header has: title, created, url)"
    )


def test_a_directory_without_gdelt_exports_is_refused(tmp_path):
    with pytest.raises(UnknownFormat) as raised:
        list(read_records(tmp_path))
    assert str(raised.value) == (
        f"{tmp_path.name}: a directory without GDELT .export.CSV[.zip] files; accepted: {ACCEPTED}"
    )


def test_batch_observations_come_from_every_format_through_the_replay_reader():
    from tocsin.pipelines.indicators.readfold import normalised, units_of

    paths = [GED_SYRIA, LISTING, GDELT_FILE, RELIEFWEB_JSON, RSS]
    units = units_of([(p, "SSD") for p in paths], processes=2, unit_bytes=4_000)
    read = [item for unit in units for item in normalised(unit, "test")]
    assert [letter for _, letter in read if letter is not None] == []
    observations = [o for o, _ in read]
    by_source = collections.Counter(o["source"] for o in observations)
    assert by_source == {
        "ucdp-ged": 21,
        "reliefweb": 29 + 4,
        "gdelt2": summary(GDELT_FILE)[1],
        "reliefweb-updates-ukraine-2020-09-17.rss.xml": 5,
    }
    listing = [o for o in observations if o["source_ids"][0] in {"reliefweb:633299", "reliefweb:887"}]
    assert [(o["source_type"], o["country"]) for o in listing] == [("NEWS", "SSD")] * 2
    assert {o["source_type"] for o in observations if o["source"] == "ucdp-ged"} == {"CONFLICT_DATA"}


def test_the_batch_job_refuses_an_unknown_file_in_one_line(tmp_path, capsys):
    from tocsin.pipelines.indicators.job import run

    notes = tmp_path / "notes.txt"
    notes.write_text("hello\n")
    with pytest.raises(SystemExit) as exited:
        run(["--batch", "--from-file", str(notes), "--output-file", str(tmp_path / "signals.jsonl")])
    assert exited.value.code == 1
    assert capsys.readouterr().err == f"error: notes.txt: unknown format; accepted: {ACCEPTED}\n"
