"""UCDP GED and GDELT parsers: exact records and exact reject messages, on real rows."""

from __future__ import annotations

import csv
import io

import pytest

from tests.conftest import DATA, FIXTURES
from tocsin.connectors.replay import Pacer
from tocsin.formats import gdelt, ucdp
from tocsin.formats.records import MissingColumns, Reject
from tocsin.serde.avro import default_registry
from tocsin.serde.validate import validate

GED_SYRIA = FIXTURES / "ucdp" / "ged_syria_19_1_excerpt.csv"


def gdelt_line() -> str:
    return (DATA / "gdelt2" / "export_15min" / "20201113001500.export.CSV").read_text().splitlines()[0]


def ucdp_row(**changes) -> dict:
    with (DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv").open(newline="", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["id"] == "14863")
    return row | changes


def test_ucdp_row_becomes_an_incident_report():
    record = ucdp.parse_row(ucdp_row(), ingested_at=1)
    assert record["id"] == "ucdp-ged:14863" and record["country"] == "SWZ"
    assert record["url"] == "https://www.justice.gov.za/trc/report/"
    assert record["attributes"]["relid"] == "SAF-1989-3-560-5"
    assert record["num_sources"] is None  # UCDP writes -1 for unknown


def test_ucdp_reject_lists_every_error():
    reject = ucdp.parse_row(ucdp_row(best="x", date_start="", type_of_violence="4", latitude="north"))
    assert isinstance(reject, Reject) and reject.reason == "parse-error"
    assert reject.errors == [
        "date_start: '' is not a date",
        "best: 'x' is not a number",
        "latitude: 'north' is not a number",
        "type_of_violence: 4 is not 1, 2 or 3",
    ]


def test_ucdp_short_row_is_rejected_with_its_line():
    text = io.StringIO(
        "id,type_of_violence,date_start,best,country,country_id\n1,3,1989-01-01,2,X,560,extra\n"
    )
    [(line, reject)] = list(ucdp.parse_csv(text))
    assert line == 2 and reject.errors == ["line 2: 7 values for 6 columns"]


def ged_syria() -> dict[str, dict]:
    with GED_SYRIA.open(newline="", encoding="utf-8") as text:
        items = [item for _, item in ucdp.parse_csv(text)]
    assert not [item for item in items if isinstance(item, Reject)]
    return {item["source_record_id"]: item for item in items}


def test_an_older_ged_layout_reads_by_column_name():
    # GED Syria of the 19.1 release: 41 columns, no relid, gwnoa or where_description.
    events = ged_syria()
    assert len(events) == 21 and {e["country"] for e in events.values()} == {"SYR"}
    schema = default_registry().get("IncidentReport").parsed
    assert [validate(e, schema) for e in events.values()] == [[]] * 21
    strike = events["256454"]  # Israel strikes the Iranian forces at the T4 airbase, 10 Feb 2018
    assert strike["actors"] == [
        {"name": "Government of Iran", "role": "side_a", "country": None},  # no gwnoa column
        {"name": "Government of Israel", "role": "side_b", "country": "ISR"},
    ]
    assert (strike["num_sources"], strike["location_name"], strike["admin1"]) == (
        2,
        "Tiyas Military Airbase (T4)",  # where_coordinates: there is no where_description
        "Homs Governorate",
    )
    assert strike["event_time"] == 1518220800000 and strike["event_time_precision"] == "day"
    maarat = events["216505"]
    assert maarat["fatalities"] == {"best": 31, "low": 31, "high": 31, "civilians": 25}
    assert maarat["num_sources"] == 4 and maarat["violence_type"] == 1
    month = events["216731"]
    assert (month["event_time_precision"], month["attributes"]["date_end"]) == ("month", "2016-02-29")
    assert "relid" not in month["attributes"] and month["attributes"]["priogrid_gid"] == "181156"
    assert [events[i]["event_time_precision"] for i in ("215551", "219468", "218954")] == [
        "days",
        "week",
        "year",
    ]
    assert {e["violence_type"] for e in events.values()} == {1, 2, 3}


def test_the_country_may_come_from_its_name_alone_and_names_in_any_case():
    text = io.StringIO("ID,Type_Of_Violence,DATE_START,Best,Country\n7,3,2016-01-02,2,Syria\n")
    [(_, record)] = list(ucdp.parse_csv(text))
    assert (record["id"], record["country"], record["fatalities"]["civilians"]) == ("ucdp-ged:7", "SYR", None)


def test_a_ged_header_without_a_required_column_fails_before_any_row():
    text = io.StringIO("id,year,type_of_violence,date_start\n1,1989,3,1989-01-01\n")
    with pytest.raises(MissingColumns) as raised:
        ucdp.parse_csv(text, "ged_old.csv")  # raises when called, not when the rows are read
    assert str(raised.value) == (
        "ged_old.csv: missing required column(s): best, country_id or country "
        "(the header has: id, year, type_of_violence, date_start)"
    )


def test_gdelt_line_becomes_an_incident_report():
    record = gdelt.parse_line(gdelt_line(), ingested_at=1)
    assert record["id"] == "gdelt2:954680550"
    assert record["event_time"] == 1605225600000  # 2020-11-13, SQLDATE
    assert (record["country"], record["admin1"], record["location_precision"]) == (
        "AFG",
        "Helmand",
        5,
    )  # GDELT geo type 5: a world ADM1
    assert record["attributes"]["DATEADDED"] == "20201113001500"
    assert record["tone"] == 2.63691683569979


def test_gdelt_rejects():
    assert gdelt.parse_line("1\t2\t3").errors == ["3 columns, expected 61"]
    values = gdelt_line().split("\t")
    values[1], values[26], values[30] = "2020-11-13", "19x", "strong"
    assert gdelt.parse_line("\t".join(values)).errors == [
        "SQLDATE: '2020-11-13' is not a YYYYMMDD date",
        "GoldsteinScale: 'strong' is not a number",
        "EventCode: '19x' is not a CAMEO code",
    ]


def test_pacer_spreads_event_time_over_wall_time(monkeypatch):
    slept = []
    monkeypatch.setattr("time.sleep", slept.append)
    pacer = Pacer(speed=3600)  # an hour of event time per second
    pacer.wait(0)
    pacer.wait(7_200_000)  # two hours later: about two seconds in
    assert len(slept) == 1 and 1.9 < slept[0] <= 2.0
