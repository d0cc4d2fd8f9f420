"""Replay a parsed source into Kafka in committed batches, resumable, paced, with a progress bar."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from tocsin.connectors.base import Batch, ConnectorSink
from tocsin.formats.records import Reject


class Pacer:
    """Holds a replay back so event time advances `speed` times faster than the wall clock."""

    def __init__(self, speed: float | None):
        self.speed = speed
        self._first_event: int | None = None
        self._started = 0.0

    def wait(self, event_ms: int | None) -> None:
        if not self.speed or event_ms is None:
            return
        if self._first_event is None:
            self._first_event, self._started = event_ms, time.monotonic()
            return
        due = (event_ms - self._first_event) / 1000 / self.speed
        delay = due - (time.monotonic() - self._started)
        if delay > 0:
            time.sleep(delay)


def replay(
    items: Iterable[tuple[int, dict | Reject]],
    sink: ConnectorSink,
    *,
    source: str,
    cursor_key: dict,
    resume_after: int = 0,
    batch_size: int = 500,
    speed: float | None = None,
    total: int | None = None,
    show_progress: bool = True,
) -> dict[str, int]:
    """Write items after position `resume_after`, committing {**cursor_key, "position": n} per batch."""
    pacer = Pacer(speed)
    counts = {"produced": 0, "dead_letter": 0, "skipped": 0}
    batch = Batch()
    position = resume_after
    columns = (TextColumn(f"[bold]{source}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, disable=not show_progress, transient=False) as progress:
        task = progress.add_task(source, total=total, completed=0)
        for position_, item in items:
            progress.advance(task)
            if position_ <= resume_after:
                counts["skipped"] += 1
                continue
            position = position_
            if isinstance(item, Reject):
                batch.rejects.append(item)
            else:
                pacer.wait(item.get("event_time"))
                batch.records.append(item)
            if len(batch) >= batch_size:
                _commit(sink, batch, cursor_key, position, source, counts)
                batch = Batch()
        if len(batch) or position > resume_after:
            _commit(sink, batch, cursor_key, position, source, counts)
    return counts


def _commit(sink, batch, cursor_key, position, source, counts):
    produced, dead = sink.write_batch(batch, {**cursor_key, "position": position}, source=source)
    counts["produced"] += produced
    counts["dead_letter"] += dead
