"""Run the file connectors (UCDP GED, ReliefWeb listings, GDELT 2.0) end to end: sink, cursor, replay.
Used by the CLI and the demo. The files are parsed by tocsin.formats; the one live source, GDELT's
`lastupdate.txt` and the export it names, is fetched here (fetching is a connector's job, not a parser's)."""

from __future__ import annotations

import csv
import time
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import structlog

from tocsin.connectors.base import BYTES, POLL_ERRORS, ConnectorSink
from tocsin.connectors.replay import replay
from tocsin.formats import gdelt, reliefweb_csv, ucdp
from tocsin.formats.records import Reject, unreadable
from tocsin.kafka import topics

log = structlog.get_logger("tocsin.connectors.ingest")


def _sink(
    client, connector, instance, topic, dead_letter_topic, state_topic, schema_name="IncidentReport"
) -> ConnectorSink:
    return ConnectorSink(
        client,
        connector,
        instance,
        topic,
        schema_name,
        dead_letter_topic=dead_letter_topic,
        state_topic=state_topic,
    )


def _count_rows(file: Path) -> int:
    """Data lines of a CSV file. Read in full before anything else, so a file that cannot be read, decoded
    or split fails as a whole (BadFile) before Kafka is touched, not after some batches."""
    try:
        with file.open(newline="", encoding="utf-8") as text:
            return max(sum(1 for _ in csv.reader(text)) - 1, 0)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise unreadable(file, exc) from None


def _replay_file(
    items: Iterable[tuple[int, dict | Reject]],
    file: Path,
    connector: str,
    schema_name: str,
    total: int,
    client: dict,
    *,
    cursor_key: dict | None = None,
    topic: str,
    dead_letter_topic: str,
    state_topic: str,
    speed: float | None,
    batch_size: int,
    show_progress: bool,
) -> dict:
    """Replay one file's items, resuming after the position its instance last committed."""
    sink = _sink(
        client, connector, f"{connector}/{file.name}", topic, dead_letter_topic, state_topic, schema_name
    )
    try:
        cursor = sink.load_cursor() or {}
        counts = replay(
            items,
            sink,
            source=file.name,
            cursor_key={"file": file.name, **(cursor_key or {})},
            resume_after=cursor.get("position", 0),
            batch_size=batch_size,
            speed=speed,
            total=total,
            show_progress=show_progress,
        )
        BYTES.labels(connector).inc(file.stat().st_size)
    finally:
        sink.close()
    return counts


def ingest_ucdp(
    file: Path,
    client: dict,
    *,
    topic: str = topics.INCIDENTS,
    dead_letter_topic: str = topics.DEAD_LETTERS,
    state_topic: str = topics.CONNECTOR_STATE,
    speed: float | None = None,
    batch_size: int = 500,
    show_progress: bool = True,
) -> dict:
    """Replay a UCDP GED CSV file, resuming after the last committed line of an earlier run.

    Raises BadFile (MissingColumns for a header without a required column) before connecting to Kafka.
    """
    file = Path(file)
    total = _count_rows(file)
    with file.open(newline="", encoding="utf-8") as text:
        items = ucdp.parse_csv(text, file.name)  # checks the header now
        return _replay_file(
            items,
            file,
            ucdp.SOURCE,
            "IncidentReport",
            total,
            client,
            topic=topic,
            dead_letter_topic=dead_letter_topic,
            state_topic=state_topic,
            speed=speed,
            batch_size=batch_size,
            show_progress=show_progress,
        )


def ingest_reliefweb_csv(
    file: Path,
    client: dict,
    *,
    country: str | None = None,
    topic: str = topics.NEWS,
    dead_letter_topic: str = topics.DEAD_LETTERS,
    state_topic: str = topics.CONNECTOR_STATE,
    speed: float | None = None,
    batch_size: int = 500,
    show_progress: bool = True,
) -> dict:
    """Replay a ReliefWeb report listing (CSV) oldest report first, resuming after the last committed one.

    `country` (ISO alpha-3) is the country of reports whose row names none. Raises BadFile
    (MissingColumns for a header without a required column) before connecting to Kafka.
    """
    file = Path(file)
    _count_rows(file)
    with file.open(newline="", encoding="utf-8") as text:
        items = reliefweb_csv.in_time_order(reliefweb_csv.parse_csv(text, file.name, country))
    return _replay_file(
        items,
        file,
        reliefweb_csv.CONNECTOR,
        "NewsItem",
        len(items),
        client,
        cursor_key={"order": "event_time"},  # positions count reports oldest first, not lines
        topic=topic,
        dead_letter_topic=dead_letter_topic,
        state_topic=state_topic,
        speed=speed,
        batch_size=batch_size,
        show_progress=show_progress,
    )


def ingest_gdelt(
    client: dict,
    *,
    directory: Path | None = None,
    url: str | None = None,
    once: bool = False,
    interval: float = 900.0,
    topic: str = topics.INCIDENTS,
    dead_letter_topic: str = topics.DEAD_LETTERS,
    state_topic: str = topics.CONNECTOR_STATE,
    speed: float | None = None,
    batch_size: int = 1000,
    show_progress: bool = True,
) -> dict:
    """Replay a directory of export files in time order, or follow `lastupdate.txt` under `url`."""
    if (directory is None) == (url is None):
        raise ValueError("give exactly one of directory or url")
    instance = f"{gdelt.SOURCE}/{Path(directory).resolve().name if directory else url}"
    sink = _sink(client, gdelt.SOURCE, instance, topic, dead_letter_topic, state_topic)
    totals = {"produced": 0, "dead_letter": 0, "skipped": 0}

    def one_file(name: str, text: str, cursor: dict) -> None:
        resume = cursor.get("position", 0) if cursor.get("file") == name else 0
        lines = text.count("\n") + (0 if text.endswith("\n") else 1)
        counts = replay(
            gdelt.parse_text(text),
            sink,
            source=name,
            cursor_key={"file": name},
            resume_after=resume,
            batch_size=batch_size,
            speed=speed,
            total=lines,
            show_progress=show_progress,
        )
        for key in totals:
            totals[key] += counts[key]
        BYTES.labels(gdelt.SOURCE).inc(len(text))

    try:
        cursor = sink.load_cursor() or {}
        if directory is not None:
            for path in gdelt.export_files(Path(directory)):
                if cursor.get("file") and path.name < cursor["file"]:
                    continue  # finished by an earlier run
                one_file(path.name, gdelt.read_export(path), cursor)
            return totals
        while True:
            try:
                latest = latest_export_url(url)
                name = latest.rsplit("/", 1)[-1]
                if name != cursor.get("file"):
                    one_file(name, gdelt.read_export(fetch_export(latest), name), cursor)
                    cursor = {"file": name}
            except OSError as exc:
                POLL_ERRORS.labels(gdelt.SOURCE).inc()
                log.warning("poll failed", url=url, error=str(exc))
            if once:
                return totals
            time.sleep(interval)
    finally:
        sink.close()


def latest_export_url(base_url: str, timeout: float = 30.0) -> str:
    """The export file named in `lastupdate.txt` ('<size> <md5> <url>' lines; the export is the first)."""
    with urllib.request.urlopen(base_url.rstrip("/") + "/lastupdate.txt", timeout=timeout) as response:
        for line in response.read().decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[2].endswith(".export.CSV.zip"):
                return parts[2]
    raise ValueError(f"no .export.CSV.zip in {base_url}/lastupdate.txt")


def fetch_export(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()
