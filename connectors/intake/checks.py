"""Checks of a request before its body is parsed: who sends it (token) and how often (rate)."""

from __future__ import annotations

import threading
import time

from tocsin.connectors.intake.config import IntakeConfig
from tocsin.web.app import authorise


def authenticate(config: IntakeConfig, authorization: str | None) -> tuple[str, str]:
    """(organisation, token digest) for an `Authorization: Bearer` header; Problem 401 or 403."""
    org = authorise(config.organisations, authorization)
    return org.name, org.token_sha256


class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `rate` per second."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one request; 0 when allowed, else the seconds until one will be."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
