"""Window specs and durations as written in settings and YAML: '1d/1h', '7d', '600s'. No Beam here."""

from __future__ import annotations

from typing import NamedTuple


class WindowSpec(NamedTuple):
    size_s: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """'1d/1h' (1 day every hour), '7d/1d', '600s/60s'; '1d' alone is a fixed window."""
        size, _, period = text.partition("/")
        spec = cls(parse_duration(size), parse_duration(period or size))
        if spec.size_s % spec.period_s:
            raise ValueError(f"window {text!r}: the size must be a multiple of the period")
        return spec

    def label(self) -> str:
        return f"{_duration_label(self.size_s)}/{_duration_label(self.period_s)}"


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> int:
    text = text.strip()
    if not text or text[-1] not in UNITS or not text[:-1].isdigit() or int(text[:-1]) <= 0:
        raise ValueError(f"duration {text!r} is not a positive whole number of s, m, h, d or w (e.g. 7d)")
    return int(text[:-1]) * UNITS[text[-1]]


def parse_duration_or_zero(text: str) -> int:
    """parse_duration, but '0' (or '0s') is allowed and means none."""
    return 0 if text.strip() in ("0", "0s") else parse_duration(text)


def _duration_label(seconds: int) -> str:
    for unit in ("d", "h", "m"):  # '7d' stays '7d': settings and logs say what the user wrote
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
