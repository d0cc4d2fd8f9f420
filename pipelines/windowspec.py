"""Window specs as written in settings and YAML: '1d/1h', '7d', '600s'. No Beam here; durations are
tocsin.durations'."""

from __future__ import annotations

from typing import NamedTuple

from tocsin.durations import UNITS, parse_duration


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


def _duration_label(seconds: int) -> str:
    for unit in ("d", "h", "m"):  # '7d' stays '7d': settings and logs say what the user wrote
        if seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
