"""Labelled episodes to score alerts against: the Early Warning Project's list, or a user's CSV.

An `Episode` is a span of days in one country (ISO alpha-3). Two sources:

- the Early Warning Project's mass-killing episodes (`ewp_mk_events_*.csv`: country, mk_event_name,
  startyear, endyear, mk_event_code, mk_location_cow...), at year resolution: an episode starts on
  1 January of its start year and ends on 31 December of its end year, or is ongoing when the end year
  is empty. Starting on 1 January is the conservative reading (a lead time measured from it is a lower
  bound of the true one, and an alert later in the onset year counts as during the episode, not before);
- a CSV `country,start,end[,name]` with days (`2013-12-15`) or years (`2013`); `end` may be empty
  (ongoing); country as ISO alpha-3 or a name.

Country names map to ISO alpha-3 with country_converter; an EWP row whose name it does not know falls back
to the row's Correlates of War location code, then to EWP's successor-state codes ("inheritors"), each
read as a Gleditsch-Ward code (the two numberings agree for all but a handful of states), so a
Yugoslav episode is placed in the successor state EWP names. Errors list every bad row with its line,
and refuse the file.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import asdict, dataclass
from pathlib import Path

from tocsin.formats.countries import iso3_checked, iso3_from_gw, iso3_from_name

EWP_COLUMNS = ("country", "mk_event_name", "startyear", "endyear")
CSV_COLUMNS = ("country", "start", "end")


class EpisodesError(ValueError):
    """An episodes file that cannot be used; `errors` lists every problem."""

    def __init__(self, path: str, errors: list[str]):
        self.errors = errors
        shown = "; ".join(errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
        super().__init__(f"{path}: {shown}")


@dataclass(frozen=True)
class Episode:
    country: str
    name: str
    start: dt.date
    end: dt.date | None  # None: ongoing
    resolution: str  # "day" or "year"
    code: str = ""

    def end_or(self, last: dt.date) -> dt.date:
        return self.end if self.end is not None else last

    def as_dict(self) -> dict:
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["end"] = self.end.isoformat() if self.end else None
        return out


def load_episodes(path: Path | str) -> list[Episode]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise EpisodesError(path.name, [f"cannot read: {error.strerror}"]) from None
    return parse_episodes(text, path.name)


def parse_episodes(text: str, name: str = "<episodes>") -> list[Episode]:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip().lower() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if all(c in header for c in EWP_COLUMNS):
        parse = _ewp_row
    elif all(c in header for c in CSV_COLUMNS):
        parse = _csv_row
    else:
        raise EpisodesError(
            name,
            [
                "not an episodes file: expected the Early Warning Project's columns "
                f"({', '.join(EWP_COLUMNS)}) or {','.join(CSV_COLUMNS)}[,name]; the header has: "
                + (", ".join(h for h in header if h) or "nothing")
            ],
        )
    episodes, errors = [], []
    for row in reader:
        line = reader.line_num
        row = {k: (v or "").strip() for k, v in row.items() if k}
        if not any(row.values()):
            continue
        problems: list[str] = []
        episode = parse(row, problems)
        if problems:
            errors.extend(f"line {line}: {p}" for p in problems)
        elif episode is not None:
            episodes.append(episode)
    if errors:
        raise EpisodesError(name, errors)
    return sorted(episodes, key=lambda e: (e.country, e.start, e.name))


def _country(value: str, problems: list[str], cow_codes: tuple[str, ...] = ()) -> str | None:
    if not value:
        problems.append("country: missing")
        return None
    code = iso3_checked(value.upper()) if len(value) == 3 and value.isalpha() else None
    code = code or iso3_from_name(value)
    for cow in cow_codes:
        if code is not None:
            break
        try:
            code = iso3_from_gw(int(float(cow))) if cow else None
        except ValueError:
            code = None
    if code is None:
        problems.append(f"country: {value!r} is not a country name or ISO alpha-3 code")
    return code


def _year(value: str, field: str, problems: list[str]) -> int | None:
    try:
        year = int(float(value))
    except ValueError:
        problems.append(f"{field}: {value!r} is not a year")
        return None
    if not 1000 <= year <= 9999:
        problems.append(f"{field}: {value!r} is not a year")
        return None
    return year


def _ewp_row(row: dict, problems: list[str]) -> Episode | None:
    # A state that no longer exists (Yugoslavia, Zanzibar) is located by EWP's successor-state codes.
    codes = tuple(
        row.get(c, "") for c in ("mk_location_cow", "mk_location_inheritor1", "mk_location_inheritor2")
    )
    country = _country(row["country"], problems, codes)
    start = _year(row["startyear"], "startyear", problems)
    end = _year(row["endyear"], "endyear", problems) if row["endyear"] else None
    if start is not None and end is not None and end < start:
        problems.append(f"endyear: {end} is before startyear {start}")
    if problems:
        return None
    return Episode(
        country,
        row["mk_event_name"],
        dt.date(start, 1, 1),
        dt.date(end, 12, 31) if end is not None else None,
        "year",
        row.get("mk_event_code", ""),
    )


def _date(value: str, field: str, problems: list[str], *, last: bool) -> tuple[dt.date | None, str]:
    """(date, resolution) of a day or a year; a year is its first day, or its last with `last`."""
    if value.isdigit() and len(value) == 4:
        year = int(value)
        return (dt.date(year, 12, 31) if last else dt.date(year, 1, 1)), "year"
    try:
        return dt.date.fromisoformat(value), "day"
    except ValueError:
        problems.append(f"{field}: {value!r} is not a date (YYYY-MM-DD) or a year (YYYY)")
        return None, "day"


def _csv_row(row: dict, problems: list[str]) -> Episode | None:
    country = _country(row["country"], problems)
    if not row["start"]:
        problems.append("start: missing")
        return None
    start, resolution = _date(row["start"], "start", problems, last=False)
    end = None
    if row["end"]:
        end, _ = _date(row["end"], "end", problems, last=True)
    if start and end and end < start:
        problems.append(f"end: {end.isoformat()} is before start {start.isoformat()}")
    if problems:
        return None
    name = row.get("name") or f"{country} {start.isoformat()}"
    return Episode(country, name, start, end, resolution, row.get("code", ""))
