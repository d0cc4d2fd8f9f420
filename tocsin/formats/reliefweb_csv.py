"""ReliefWeb report listings as CSV (one report a row: id, title, date, url) -> NewsItem records.

The same listing comes in two namings, read alike by column name (any case, any order):
- R exports: `"","data.list.id","title","date.created","rw.url"`, the first column an unnamed row number;
- other exports: `id`, `title`, `created`, `url`, with a `score` and a `country` column.

A report keeps the id it has in the API (`reliefweb:<id>`, as reliefweb.py), so one read from
a listing and from the API is the same record. A listing gives the day a report was created, no time:
event time and publication time are that day at midnight UTC. The country comes from the `country`
column (a name or an ISO alpha-3 code), else from the `country` the caller gives (the country a listing
was made for), else none. The language is detected from the title.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator

from tocsin.formats.countries import iso3_checked, iso3_from_name
from tocsin.formats.records import Reject, check_columns, column_names, csv_rows
from tocsin.formats.reliefweb import SOURCE
from tocsin.formats.text import detect_language
from tocsin.timestamps import epoch_ms, now_ms

CONNECTOR = "reliefweb-csv"
# The names each column may have, first the R export's.
ID = ("data.list.id", "id")
TITLE = ("title",)
DATE = ("date.created", "created")
URL = ("rw.url", "url")
REQUIRED = (ID, TITLE, DATE)
ROW_NUMBER = ""  # the R export's unnamed first column
KEPT = {"score": "score", ROW_NUMBER: "row"}  # column -> attribute, verbatim


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-3 code given by a user ('ssd' -> 'SSD'); ValueError if it is none."""
    code = value.strip().upper()
    if not iso3_checked(code):
        raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-3 country code")
    return code


def _first(row: dict, names: tuple[str, ...]) -> tuple[str, str]:
    """(column name, trimmed value) of the first of `names` the row has."""
    name = next((n for n in names if n in row), names[0])
    return name, (row.get(name) or "").strip()


def _date(value: str) -> dt.date | None:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    # A datetime with an offset is dated in UTC, as every tocsin time is.
    return when.astimezone(dt.UTC).date() if when.tzinfo else when.date()


def _country(value: str) -> str | None:
    code = value.upper()
    return (iso3_checked(code) if len(code) == 3 and code.isalpha() else None) or iso3_from_name(value)


def parse_row(row: dict, country: str | None = None, ingested_at: int | None = None) -> dict | Reject:
    """One listing row (keys as column_names gives them) -> NewsItem, or a Reject with every error.
    `country` must already be an ISO alpha-3 code (see country_code)."""
    errors: list[str] = []
    id_column, report_id = _first(row, ID)
    title = " ".join((row.get("title") or "").split())
    date_column, date_text = _first(row, DATE)
    url_column, url = _first(row, URL)
    named = (row.get("country") or "").strip()
    if not report_id:
        errors.append(f"{id_column}: required value missing")
    elif not report_id.isdigit():
        errors.append(f"{id_column}: {report_id!r} is not a ReliefWeb report id")
    if not title:
        errors.append("title: required value missing")
    day = _date(date_text)
    if day is None:
        errors.append(f"{date_column}: {date_text!r} is not a date")
    if url and not url.startswith(("http://", "https://")):
        errors.append(f"{url_column}: {url!r} is not an http(s) URL")
    found = _country(named) if named else None
    if named and found is None:
        errors.append(f"country: {named!r} is not a country name or ISO 3166-1 alpha-3 code")
    if errors:
        return Reject("parse-error", errors, ",".join(str(v) for v in row.values()))
    published = epoch_ms(dt.datetime.combine(day, dt.time(), dt.UTC))
    return {
        "id": f"{SOURCE}:{report_id}",
        "source": SOURCE,
        "feed_url": None,
        "guid": report_id,
        "link": url or f"https://reliefweb.int/node/{report_id}",
        "title": title,
        "summary": None,
        "published": published,
        "event_time": published,
        "ingested_at": ingested_at or now_ms(),
        "language": detect_language(title),
        "authors": [],
        "categories": [],
        "entities": [],
        "country": found or country,
        "latitude": None,
        "longitude": None,
        "attributes": {k: row[c].strip() for c, k in KEPT.items() if (row.get(c) or "").strip()},
    }


def parse_csv(
    text: io.TextIOBase,
    source: str,
    country: str | None = None,
    ingested_at: int | None = None,
    part: tuple[int, int] = (0, 1),
) -> Iterator[tuple[int, dict | Reject]]:
    """(line number, NewsItem or Reject) for every data line (of `part`, see csv_rows); line 1 is the
    header.

    The header is checked here, before any row is read: one without an id, title or date column raises
    MissingColumns naming `source` (the file) and every missing column. `country` (ISO alpha-3, any case)
    is checked too: ValueError if it is not a code.
    """
    country = country_code(country) if country else None
    reader = csv.DictReader(text)
    header = reader.fieldnames
    check_columns(source, header, REQUIRED)
    reader.fieldnames = column_names(header)
    ingested_at = ingested_at or now_ms()
    return _records(reader, country, ingested_at, part)


def _records(reader, country, ingested_at, part) -> Iterator[tuple[int, dict | Reject]]:
    for line, row in csv_rows(reader, part):
        item = row if isinstance(row, Reject) else parse_row(row, country, ingested_at)
        if isinstance(item, Reject) and item.position is None:
            item.position = line
            item.errors = [f"line {line}: {e}" for e in item.errors]
        yield line, item


def in_time_order(items: Iterable[tuple[int, dict | Reject]]) -> list[tuple[int, dict | Reject]]:
    """The items oldest first, numbered 1, 2, ... in that order (Rejects first, by line).

    Listings are newest first: replayed as they are, every report would be older than the one before,
    so --speed could not pace them and a streaming window would see them all as late. The numbering is the
    same on every run of the same file, so a replay resumes after the last number committed; a Reject
    keeps its line as its position.
    """
    ordered = sorted(
        items,
        key=lambda pair: (
            (0, pair[0], 0) if isinstance(pair[1], Reject) else (1, pair[1]["event_time"], pair[0])
        ),
    )
    return [(n, item) for n, (_, item) in enumerate(ordered, start=1)]
