"""Run the file connectors (UCDP GED, GDELT 2.0) end to end: sink, cursor, replay. Used by CLI and demo."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import structlog

from tocsin.connectors import gdelt, ucdp
from tocsin.connectors.base import BYTES, DEAD_LETTER_TOPIC, POLL_ERRORS, STATE_TOPIC, ConnectorSink
from tocsin.connectors.replay import replay

INCIDENTS_TOPIC = "tocsin.incidents.raw.v1"
log = structlog.get_logger("tocsin.connectors.ingest")


def _sink(client, connector, instance, topic, dead_letter_topic, state_topic) -> ConnectorSink:
    return ConnectorSink(
        client,
        connector,
        instance,
        topic,
        "IncidentReport",
        dead_letter_topic=dead_letter_topic,
        state_topic=state_topic,
    )


def ingest_ucdp(
    file: Path,
    client: dict,
    *,
    topic: str = INCIDENTS_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    state_topic: str = STATE_TOPIC,
    speed: float | None = None,
    batch_size: int = 500,
    show_progress: bool = True,
) -> dict:
    """Replay a UCDP GED CSV file, resuming after the last committed line of an earlier run."""
    file = Path(file)
    sink = _sink(client, ucdp.SOURCE, f"{ucdp.SOURCE}/{file.name}", topic, dead_letter_topic, state_topic)
    try:
        cursor = sink.load_cursor() or {}
        with file.open(newline="", encoding="utf-8") as text:
            total = sum(1 for _ in csv.reader(text)) - 1
        with file.open(newline="", encoding="utf-8") as text:
            counts = replay(
                ucdp.parse_csv(text),
                sink,
                source=file.name,
                cursor_key={"file": file.name},
                resume_after=cursor.get("position", 0),
                batch_size=batch_size,
                speed=speed,
                total=total,
                show_progress=show_progress,
            )
        BYTES.labels(ucdp.SOURCE).inc(file.stat().st_size)
    finally:
        sink.close()
    return counts


def ingest_gdelt(
    client: dict,
    *,
    directory: Path | None = None,
    url: str | None = None,
    once: bool = False,
    interval: float = 900.0,
    topic: str = INCIDENTS_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    state_topic: str = STATE_TOPIC,
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
                latest = gdelt.latest_export_url(url)
                name = latest.rsplit("/", 1)[-1]
                if name != cursor.get("file"):
                    one_file(name, gdelt.read_export(gdelt.fetch(latest), name), cursor)
                    cursor = {"file": name}
            except OSError as exc:
                POLL_ERRORS.labels(gdelt.SOURCE).inc()
                log.warning("poll failed", url=url, error=str(exc))
            if once:
                return totals
            time.sleep(interval)
    finally:
        sink.close()
