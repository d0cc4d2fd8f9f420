"""Durations as operators write them, in Prometheus and Alertmanager's form: '90s', '5m', '1h30m', '7d'.

One grammar for every duration tocsin reads (window specs, lateness, router intervals, timeouts, CLI
flags): units w, d, h, m, s, each at most once, largest first, whole numbers. A duration is typed at
load (`Duration` in a pydantic model is whole seconds, an int) and never parsed again where it is used.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

UNITS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_GRAMMAR = re.compile("".join(rf"(?:(?P<{u}>\d+){u})?" for u in UNITS))
_HINT = "like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"


def parse_duration(text: str) -> int:
    """Whole seconds of a positive duration; ValueError with one line saying what is wrong."""
    seconds = parse_duration_or_zero(text)
    if seconds == 0:
        raise ValueError(f"duration {text!r} must be greater than zero")
    return seconds


def parse_duration_or_zero(text: str) -> int:
    """parse_duration, but zero ('0', '0s', '0m') is allowed and means none."""
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise ValueError(f"duration {text!r} is not {_HINT}")
    if isinstance(text, int):  # YAML reads a bare 0 as an int; any other number has no unit
        if text == 0:
            return 0
        raise ValueError(f"duration {text!r} has no unit: write {text}s, {text}m...")
    stripped = text.strip()
    if stripped == "0":
        return 0
    match = _GRAMMAR.fullmatch(stripped)
    if not stripped or match is None:
        raise ValueError(f"duration {text!r} is not {_HINT}")
    return sum(int(v) * UNITS[u] for u, v in match.groupdict().items() if v is not None)


def format_duration(seconds: int) -> str:
    """Text that parses back to `seconds`, largest unit a day: 5400 -> '1h30m', 604800 -> '7d'."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        if unit == "w":  # '7d' and '10d' read better than '1w' and '1w3d'
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# In a pydantic model: validated at load to whole seconds, written back as operators write it. Defaults
# are given in seconds (pydantic does not validate them); a bare number in YAML is refused (no unit).
_AS_TEXT = PlainSerializer(format_duration, return_type=str)
Duration = Annotated[int, BeforeValidator(parse_duration), _AS_TEXT]
DurationOrZero = Annotated[int, BeforeValidator(parse_duration_or_zero), _AS_TEXT]
