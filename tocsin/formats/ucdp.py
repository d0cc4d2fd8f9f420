"""UCDP Georeferenced Event Dataset (GED) CSV -> IncidentReport records.

One incident per GED event, keeping the type of violence, deaths (best/low/high, civilians), both sides,
location and date precision. Columns are found by name (any case, any order), so other GED layouts read
too: 23.1 has 49 columns, older releases fewer (GED Syria of the 19.1 release: 41, without relid, gwnoa
or where_description). Only the columns the normaliser needs are required, checked once in the header.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from pathlib import Path

from tocsin.formats.countries import iso3_from_gw, iso3_from_name
from tocsin.formats.records import Reject, check_columns, column_names, csv_rows
from tocsin.timestamps import epoch_ms, now_ms

SOURCE = "ucdp-ged"
# Each entry: the names one required column may have. The country comes from the Gleditsch-Ward code,
# else from the name, so either will do.
REQUIRED = (("id",), ("type_of_violence",), ("date_start",), ("best",), ("country_id", "country"))
# UCDP date_prec: 1 exact day, 2 within 2-6 days, 3 week, 4 month, 5 year or longer.
DATE_PRECISION = {"1": "day", "2": "days", "3": "week", "4": "month", "5": "year"}
URL = re.compile(r"https?://\S+")
KEPT = (
    "relid",
    "year",
    "code_status",
    "conflict_name",
    "dyad_name",
    "adm_2",
    "region",
    "event_clarity",
    "where_prec",
    "priogrid_gid",
    "source_office",
    "source_date",
    "source_headline",
    "date_end",
    "deaths_a",
    "deaths_b",
    "deaths_unknown",
)


def _int(row: dict, name: str, errors: list[str], *, required: bool = True) -> int | None:
    value = (row.get(name) or "").strip()
    if value == "":
        if required:
            errors.append(f"{name}: required value missing")
        return None
    try:
        return int(float(value)) if "." in value else int(value)
    except ValueError:
        errors.append(f"{name}: {value!r} is not a number")
        return None


def _float(row: dict, name: str, errors: list[str]) -> float | None:
    value = (row.get(name) or "").strip()
    if value == "":
        return None
    try:
        return float(value)
    except ValueError:
        errors.append(f"{name}: {value!r} is not a number")
        return None


def _date(row: dict, name: str, errors: list[str]) -> int | None:
    value = (row.get(name) or "").strip()
    try:
        return epoch_ms(dt.datetime.fromisoformat(value[:19]).replace(tzinfo=dt.UTC))
    except ValueError:
        errors.append(f"{name}: {value!r} is not a date")
        return None


def parse_row(row: dict, ingested_at: int | None = None) -> dict | Reject:
    """One GED row (keys as column_names gives them) -> IncidentReport, or a Reject with every error."""
    errors: list[str] = []
    event_id = _int(row, "id", errors)
    violence = _int(row, "type_of_violence", errors)
    event_time = _date(row, "date_start", errors)
    best = _int(row, "best", errors)
    low = _int(row, "low", errors, required=False)
    high = _int(row, "high", errors, required=False)
    civilians = _int(row, "deaths_civilians", errors, required=False)
    lat, lon = _float(row, "latitude", errors), _float(row, "longitude", errors)
    where_prec = _int(row, "where_prec", errors, required=False)
    # A layout with the code must give it in every row; one with only names gives the name.
    country_id = _int(row, "country_id", errors, required="country_id" in row)
    sources = _int(row, "number_of_sources", errors, required=False)
    if violence is not None and violence not in (1, 2, 3):
        errors.append(f"type_of_violence: {violence} is not 1, 2 or 3")
    if errors:
        return Reject("parse-error", errors, ",".join(str(v) for v in row.values()))
    gw_country = iso3_from_gw(country_id) if country_id is not None else None
    country = gw_country or iso3_from_name(row.get("country") or "")
    side_a_country = _gw_country(row.get("gwnoa"))
    side_b_country = _gw_country(row.get("gwnob"))
    headline = (row.get("source_headline") or "").strip()
    url = URL.search(row.get("source_article") or "")
    return {
        "id": f"{SOURCE}:{event_id}",
        "source": SOURCE,
        "source_type": "CONFLICT_DATA",
        "source_record_id": str(event_id),
        "event_time": event_time,
        "event_time_precision": DATE_PRECISION.get((row.get("date_prec") or "").strip()),
        "ingested_at": ingested_at or now_ms(),
        "country": country,
        "admin1": (row.get("adm_1") or "").strip() or None,
        "location_name": (row.get("where_description") or row.get("where_coordinates") or "").strip() or None,
        "latitude": lat,
        "longitude": lon,
        "location_precision": where_prec,
        "title": headline or (row.get("dyad_name") or "").strip() or None,
        "description": (row.get("source_original") or "").strip() or None,
        "language": "en",
        "url": url.group(0).rstrip(").,;") if url else None,
        "event_codes": [f"ucdp:type_of_violence:{violence}"],
        "violence_type": violence,
        "goldstein": None,
        "tone": None,
        "actors": [
            a
            for a in (
                {"name": (row.get("side_a") or "").strip(), "role": "side_a", "country": side_a_country},
                {"name": (row.get("side_b") or "").strip(), "role": "side_b", "country": side_b_country},
            )
            if a["name"]
        ],
        "fatalities": {"best": best, "low": low, "high": high, "civilians": civilians},
        "num_sources": sources if sources is not None and sources >= 0 else None,
        "reporter": None,
        "attributes": {k: row[k].strip() for k in KEPT if (row.get(k) or "").strip()},
    }


def _gw_country(value: str | None) -> str | None:
    value = (value or "").strip()
    if not value:
        return None
    # Several states (e.g. '560, 620') are listed for international conflicts: keep the first.
    first = value.split(",")[0].strip()
    return iso3_from_gw(int(first)) if first.isdigit() else None


def parse_csv(
    text: io.TextIOBase, source: str | None = None, part: tuple[int, int] = (0, 1)
) -> Iterator[tuple[int, dict | Reject]]:
    """(line number, record or Reject) for every data line (of `part`, see csv_rows); line 1 is the header.

    The header is checked here, before any row is read: one without a required column raises
    MissingColumns naming the file (`source`, else the stream's file name) and every missing column.
    """
    reader = csv.DictReader(text)
    header = reader.fieldnames
    check_columns(source or _name(text), header, REQUIRED)
    reader.fieldnames = column_names(header)
    return _records(reader, part)


def _records(reader: csv.DictReader, part: tuple[int, int]) -> Iterator[tuple[int, dict | Reject]]:
    for line, row in csv_rows(reader, part):
        item = row if isinstance(row, Reject) else parse_row(row)
        if isinstance(item, Reject) and item.position is None:
            item.position = line
            item.errors = [f"line {line}: {e}" for e in item.errors]
        yield line, item


def _name(text) -> str:
    name = getattr(text, "name", None)
    return Path(name).name if isinstance(name, str) else "input"
