"""One reader for replays and back-tests: a source file (or a directory of GDELT exports) -> raw records.

`read_records(path)` finds the format of the file by its name and, for CSV, by its header, runs that
format's pure parser and yields Read(source label, position, schema, record or Reject). The records
are the raw IncidentReport / NewsItem dicts the connectors put on Kafka, and `schema` names which, as the
normaliser wants it: normalise(read.schema, read.item).

| format | known by | schema |
| --- | --- | --- |
| UCDP GED CSV | `.csv` with a type_of_violence column | IncidentReport |
| ReliefWeb listing CSV | `.csv` with a title and a date.created (or created) column | NewsItem |
| GDELT 2.0 export | `.export.CSV` or `.export.CSV.zip`, or a directory of them | IncidentReport |
| ReliefWeb API JSON | `.json` (a saved /reports response) | NewsItem |
| RSS/Atom | `.xml`, `.rss`, `.atom` | NewsItem |

Anything else is refused with UnknownFormat (a BadFile): one line naming the file and these formats.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from tocsin.formats import feeds, gdelt, reliefweb, reliefweb_csv, ucdp
from tocsin.formats.records import BadFile, Reject, column_names, unreadable
from tocsin.formats.text import feed_id_for

Items = Iterator[tuple[int, dict | Reject]]
ACCEPTED = (
    "UCDP GED CSV (a type_of_violence column), ReliefWeb listing CSV (title and date.created or created "
    "columns), GDELT 2.0 exports (.export.CSV[.zip] or a directory of them), ReliefWeb API JSON (.json), "
    "RSS/Atom (.xml, .rss, .atom)"
)
FEED_SUFFIXES = (".xml", ".rss", ".atom")


class UnknownFormat(BadFile):
    """A file no tocsin parser reads."""

    def __init__(self, path: Path, why: str):
        super().__init__(f"{path.name}: {why}; accepted: {ACCEPTED}")


class Read(NamedTuple):
    source: str  # the file's name
    position: int  # line (CSV, GDELT), item (RSS/Atom) or report (JSON) within the file, from 1
    schema: str  # "IncidentReport" or "NewsItem"
    item: dict | Reject


@dataclass(frozen=True)
class Format:
    """How one kind of file is read: its name, the schema of its records, and its parser."""

    name: str
    schema: str
    parse: Callable[[Path, str | None, tuple[int, int]], Items]  # path, country, part (CSV: see csv_rows)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise unreadable(path, exc) from None


def _ucdp(path: Path, country: str | None, part: tuple[int, int]) -> Items:
    return ucdp.parse_csv(io.StringIO(_text(path)), path.name, part)


def _listing(path: Path, country: str | None, part: tuple[int, int]) -> Items:
    return reliefweb_csv.parse_csv(io.StringIO(_text(path)), path.name, country, part=part)


def _whole(parse):
    """A parser of whole files only: part (0, n) is the whole file, any other part is empty."""

    def parse_part(path: Path, country: str | None, part: tuple[int, int]) -> Items:
        return parse(path, country) if part[0] == 0 else iter(())

    return parse_part


def _gdelt(path: Path, country: str | None) -> Items:
    try:
        return gdelt.parse_text(gdelt.read_export(path))
    except OSError as exc:
        raise unreadable(path, exc) from None
    except zipfile.BadZipFile as exc:
        raise BadFile(f"{path.name}: not a zip archive ({exc})") from None
    except StopIteration:  # read_export found no .csv member
        raise BadFile(f"{path.name}: no .CSV file in the archive") from None


def _reliefweb_json(path: Path, country: str | None) -> Items:
    try:
        doc = json.loads(_text(path))
    except json.JSONDecodeError as exc:
        raise BadFile(f"{path.name}: not JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise BadFile(f'{path.name}: not a ReliefWeb API response (no "data" list)')
    items, _ = reliefweb.parse_page(doc)
    return iter(items)


def _feed(path: Path, country: str | None) -> Items:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise unreadable(path, exc) from None
    # A saved feed has no URL: its file name stands for the feed in record ids and the source name.
    items = feeds.parse_feed(content, feed_id_for(path.name), None)
    ok, why = feeds.is_feed(content) if not items else (True, "")
    if not ok:
        raise BadFile(f"{path.name}: not an RSS or Atom feed ({why})")
    return iter(items)


UCDP = Format("ucdp-ged-csv", "IncidentReport", _ucdp)
LISTING = Format("reliefweb-listing-csv", "NewsItem", _listing)
GDELT = Format("gdelt2-export", "IncidentReport", _whole(_gdelt))
RELIEFWEB_JSON = Format("reliefweb-api-json", "NewsItem", _whole(_reliefweb_json))
FEED = Format("rss-atom", "NewsItem", _whole(_feed))


def _csv_format(path: Path) -> Format:
    try:
        with path.open(newline="", encoding="utf-8") as text:
            header = next(csv.reader(text), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise unreadable(path, exc) from None
    names = set(column_names(header or ()))
    if "type_of_violence" in names:
        return UCDP
    if "title" in names and names.intersection(reliefweb_csv.DATE):
        return LISTING
    raise UnknownFormat(path, "a CSV file of no known layout" if header else "an empty CSV file")


def detect(path: Path) -> Format:
    """The format of one file (not a directory); UnknownFormat if none fits."""
    name = path.name.lower()
    if name.endswith((".export.csv", ".export.csv.zip")):
        return GDELT
    if name.endswith(".csv"):
        return _csv_format(path)
    if name.endswith(".json"):
        return RELIEFWEB_JSON
    if name.endswith(FEED_SUFFIXES):
        return FEED
    raise UnknownFormat(path, "unknown format")


def files_of(path: Path) -> list[Path]:
    """The file itself, or a directory's GDELT export files in time order."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    files = gdelt.export_files(path)
    if not files:
        raise UnknownFormat(path, "a directory without GDELT .export.CSV[.zip] files")
    return files


def read_records(path: Path, country: str | None = None, part: tuple[int, int] = (0, 1)) -> Iterator[Read]:
    """Read(source label, position, schema, raw record or Reject) for every record of the file or directory.

    `country` (ISO alpha-3) is the country of a ReliefWeb listing's rows that name none; other formats say
    their own. The format of every file is found before any record is yielded (UnknownFormat otherwise);
    a file that cannot be read, or a CSV header without a required column, raises BadFile (MissingColumns)
    when that file's turn comes, before any of its records. `part` (k, n): only the k-th of n parts of
    a CSV file's rows (readers sharing a file); of other formats, the whole file is part 0.
    """
    found = [(file, detect(file)) for file in files_of(path)]
    for file, fmt in found:
        for position, item in fmt.parse(file, country, part):
            yield Read(file.name, position, fmt.schema, item)
