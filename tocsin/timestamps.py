"""Epoch milliseconds, the one time unit on tocsin's topics (Avro timestamp-millis)."""

from __future__ import annotations

import datetime as dt
import time


def epoch_ms(value: dt.datetime | int) -> int:
    """Epoch ms of a timestamp-millis field, decoded (a datetime; naive means UTC) or not (an int)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return int(value.timestamp() * 1000)
    return int(value)


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_minutes(ms: int) -> str:
    """'2024-05-01T12:30Z': how alerts and logs print an instant."""
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%MZ")
