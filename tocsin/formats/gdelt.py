"""GDELT 2.0 event exports (tab-separated, 61 columns, one file per 15 minutes) -> IncidentReport records.

An export is read from a `.export.CSV` file, a `.export.CSV.zip` archive, or the bytes of one (the
connector fetches them from a base URL by following `lastupdate.txt`: connectors/ingest.py). CAMEO codes,
Goldstein scale, tone, geography and the source URL are kept. Event time is SQLDATE (the day the event
took place, as GDELT dates it) with day precision; DATEADDED (when GDELT saw it) is kept in the
attributes. Countries are ISO alpha-3 (see countries.py): GDELT's FIPS 10-4 codes are kept verbatim as
attributes.
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from tocsin.formats.countries import iso3_checked, iso3_from_place
from tocsin.formats.records import Reject
from tocsin.timestamps import epoch_ms, now_ms

SOURCE = "gdelt2"
# The GDELT 2.0 event table, in file order (GDELT Event Codebook V2.0).
COLUMNS = (
    "GLOBALEVENTID SQLDATE MonthYear Year FractionDate "
    "Actor1Code Actor1Name Actor1CountryCode Actor1KnownGroupCode Actor1EthnicCode Actor1Religion1Code "
    "Actor1Religion2Code Actor1Type1Code Actor1Type2Code Actor1Type3Code "
    "Actor2Code Actor2Name Actor2CountryCode Actor2KnownGroupCode Actor2EthnicCode Actor2Religion1Code "
    "Actor2Religion2Code Actor2Type1Code Actor2Type2Code Actor2Type3Code "
    "IsRootEvent EventCode EventBaseCode EventRootCode QuadClass GoldsteinScale NumMentions NumSources "
    "NumArticles AvgTone "
    "Actor1Geo_Type Actor1Geo_FullName Actor1Geo_CountryCode Actor1Geo_ADM1Code Actor1Geo_ADM2Code "
    "Actor1Geo_Lat Actor1Geo_Long Actor1Geo_FeatureID "
    "Actor2Geo_Type Actor2Geo_FullName Actor2Geo_CountryCode Actor2Geo_ADM1Code Actor2Geo_ADM2Code "
    "Actor2Geo_Lat Actor2Geo_Long Actor2Geo_FeatureID "
    "ActionGeo_Type ActionGeo_FullName ActionGeo_CountryCode ActionGeo_ADM1Code ActionGeo_ADM2Code "
    "ActionGeo_Lat ActionGeo_Long ActionGeo_FeatureID DATEADDED SOURCEURL"
).split()
KEPT = (
    "IsRootEvent",
    "QuadClass",
    "NumMentions",
    "NumArticles",
    "DATEADDED",
    "ActionGeo_FullName",
    "ActionGeo_CountryCode",
    "ActionGeo_ADM1Code",
    "ActionGeo_FeatureID",
    "Actor1Code",
    "Actor2Code",
    "Actor1Type1Code",
    "Actor2Type1Code",
    "Actor1KnownGroupCode",
    "Actor2KnownGroupCode",
    "Actor1EthnicCode",
    "Actor2EthnicCode",
    "Actor1Religion1Code",
    "Actor2Religion1Code",
)


def _number(row: dict, name: str, kind, errors: list[str], required: bool = False):
    value = row[name].strip()
    if value == "":
        if required:
            errors.append(f"{name}: required value missing")
        return None
    try:
        return kind(value)
    except ValueError:
        errors.append(f"{name}: {value!r} is not {'an integer' if kind is int else 'a number'}")
        return None


@lru_cache(maxsize=4096)
def _day_ms(sqldate: str) -> int:
    # An export's events fall on a few days: strptime once a day, not once a row (a seventh of a replay).
    return epoch_ms(dt.datetime.strptime(sqldate, "%Y%m%d").replace(tzinfo=dt.UTC))


def parse_line(line: str, ingested_at: int | None = None) -> dict | Reject:
    values = line.rstrip("\r\n").split("\t")
    if len(values) != len(COLUMNS):
        return Reject("parse-error", [f"{len(values)} columns, expected {len(COLUMNS)}"], line)
    row = dict(zip(COLUMNS, values, strict=True))
    errors: list[str] = []
    event_id = _number(row, "GLOBALEVENTID", int, errors, required=True)
    sqldate = row["SQLDATE"].strip()
    try:
        event_time = _day_ms(sqldate)
    except ValueError:
        errors.append(f"SQLDATE: {sqldate!r} is not a YYYYMMDD date")
        event_time = None
    goldstein = _number(row, "GoldsteinScale", float, errors)
    tone = _number(row, "AvgTone", float, errors)
    lat = _number(row, "ActionGeo_Lat", float, errors)
    lon = _number(row, "ActionGeo_Long", float, errors)
    geo_type = _number(row, "ActionGeo_Type", int, errors)
    sources = _number(row, "NumSources", int, errors)
    code = row["EventCode"].strip()
    if not code.isdigit():
        errors.append(f"EventCode: {code!r} is not a CAMEO code")
    if errors:
        return Reject("parse-error", errors, line)
    place = row["ActionGeo_FullName"].strip()
    parts = [p.strip() for p in place.split(",")]
    return {
        "id": f"{SOURCE}:{event_id}",
        "source": SOURCE,
        "source_type": "EVENT_DATA",
        "source_record_id": str(event_id),
        "event_time": event_time,
        "event_time_precision": "day",
        "ingested_at": ingested_at or now_ms(),
        "country": iso3_from_place(place) if place else None,
        "admin1": parts[-2] if len(parts) >= 3 else None,
        "location_name": place or None,
        "latitude": lat,
        "longitude": lon,
        "location_precision": geo_type,
        "title": None,
        "description": None,
        "language": None,
        "url": row["SOURCEURL"].strip() or None,
        "event_codes": [
            f"cameo:{code}",
            f"cameo-base:{row['EventBaseCode'].strip()}",
            f"cameo-root:{row['EventRootCode'].strip()}",
        ],
        "violence_type": None,
        "goldstein": goldstein,
        "tone": tone,
        "actors": [a for a in (_actor(row, "Actor1", "actor1"), _actor(row, "Actor2", "actor2")) if a],
        "fatalities": None,
        "num_sources": sources,
        "reporter": None,
        "attributes": {k: row[k].strip() for k in KEPT if row[k].strip()},
    }


def _actor(row: dict, prefix: str, role: str) -> dict | None:
    name = row[f"{prefix}Name"].strip()
    if not name:
        return None
    code = row[f"{prefix}CountryCode"].strip()
    return {"name": name, "role": role, "country": iso3_checked(code) if code else None}


def parse_text(text: str, ingested_at: int | None = None) -> Iterator[tuple[int, dict | Reject]]:
    """(line number, record or Reject) for each line of one export file (no header)."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        item = parse_line(line, ingested_at)
        if isinstance(item, Reject):
            item.position = number
            item.errors = [f"line {number}: {e}" for e in item.errors]
        yield number, item


def export_files(directory: Path) -> list[Path]:
    """Export files of a directory in time order (their names start with YYYYMMDDHHMMSS)."""
    return sorted(
        p for p in Path(directory).iterdir() if p.name.lower().endswith((".export.csv", ".export.csv.zip"))
    )


def read_export(path_or_bytes: Path | bytes, name: str = "") -> str:
    data = Path(path_or_bytes).read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    name = name or (path_or_bytes.name if isinstance(path_or_bytes, Path) else "")
    if name.lower().endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            inner = next(n for n in archive.namelist() if n.lower().endswith(".csv"))
            data = archive.read(inner)
    return data.decode("utf-8", errors="replace")
