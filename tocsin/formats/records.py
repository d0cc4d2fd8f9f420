"""What every parser shares: rejects, unreadable files, and the CSV header and row checks.

A parser turns source bytes into records or Rejects (a source record that cannot become a valid record:
why, every error, the raw excerpt), and raises BadFile for a file it cannot read at all. The connectors
put the Rejects on the dead-letter topic; the batch pipelines turn them into dead letters of their own.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass
class Reject:
    """A source record that cannot become a valid record: why, every error, and the raw excerpt."""

    reason: str
    errors: list[str]
    raw: bytes | str
    position: int | None = None


class BadFile(ValueError):
    """A source file that cannot be read at all: one line naming the file, raised before any of its rows
    (a bad row is a Reject; a bad file is not a dead letter per row)."""


class MissingColumns(BadFile):
    """A CSV header without a column the parser needs; each missing column is named by the names it may have
    ('date.created or created'), and the header is shown as given (an unnamed column as "")."""

    def __init__(self, source: str, missing: list[str], header: list[str] | None):
        self.source, self.missing, self.header = source, missing, header
        shown = ", ".join(name.lstrip("\ufeff") or '""' for name in header or ())
        has = f"the header has: {shown}" if header else "the file is empty"
        super().__init__(f"{source}: missing required column(s): {', '.join(missing)} ({has})")


def unreadable(path, exc: OSError | UnicodeDecodeError | csv.Error) -> BadFile:
    """The BadFile for a file that cannot be opened, is not UTF-8 text or not CSV the csv module can split
    (no byte offset for UTF-8: a streamed read only knows the offset within the chunk it was decoding)."""
    if isinstance(exc, UnicodeDecodeError):
        return BadFile(f"{path.name}: not UTF-8 text ({exc.reason})")
    if isinstance(exc, csv.Error):
        return BadFile(f"{path.name}: not readable as CSV ({exc})")
    return BadFile(f"{path.name}: cannot be read: {exc.strerror or exc}")


def column_names(header: Iterable[str]) -> list[str]:
    """Column names as the parsers look them up: trimmed, lower case, without a byte-order mark (which
    spreadsheet exports put before the first name)."""
    return [name.lstrip("\ufeff").strip().lower() for name in header]


def check_columns(source: str, header: list[str] | None, required: Iterable[tuple[str, ...]]) -> None:
    """Raise MissingColumns unless the header (as given) has one of the names of each `required` entry."""
    present = set(column_names(header or ()))
    missing = [" or ".join(names) for names in required if not present.intersection(names)]
    if missing:
        raise MissingColumns(source, missing, header)


def csv_rows(reader: csv.DictReader, part: tuple[int, int] = (0, 1)) -> Iterator[tuple[int, dict | Reject]]:
    """(line number, row) of every data line; a line with more values than the header has columns is a
    Reject (csv keeps the extra values under the key None). Line 1 is the header. `part` (k, n): only
    the data rows k, k + n, k + 2n, ... (counted from 0), for readers that share a file."""
    k, n = part
    for index, row in enumerate(reader):
        if n > 1 and index % n != k:
            continue
        line = reader.line_num
        if None in row:
            values = len(row) - 1 + len(row[None])
            errors = [f"line {line}: {values} values for {len(reader.fieldnames)} columns"]
            yield line, Reject("parse-error", errors, repr(row), position=line)
            continue
        yield line, row
