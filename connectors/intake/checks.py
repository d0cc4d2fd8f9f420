"""Checks of a request before its body is parsed: who sends it (token), how often (rate), how much."""

from __future__ import annotations

import threading
import time

from tocsin.connectors.intake.config import IntakeConfig
from tocsin.organisations import bearer_token, find_by_token


class HttpError(Exception):
    def __init__(self, status: int, errors: list[str], headers: dict[str, str] | None = None):
        self.status = status
        self.errors = errors
        self.headers = headers or {}
        super().__init__(f"{status}: {'; '.join(errors)}")


def authenticate(config: IntakeConfig, authorization: str | None) -> tuple[str, str]:
    """(organisation, token digest) for an `Authorization: Bearer` header; HttpError 401 or 403."""
    token = bearer_token(authorization)
    if token is None:
        raise HttpError(401, ["authorization: a bearer token is required"], {"WWW-Authenticate": "Bearer"})
    org = find_by_token(config.organisations, token)
    if org is None:
        raise HttpError(401, ["authorization: unknown token"], {"WWW-Authenticate": "Bearer"})
    if org.revoked:
        raise HttpError(403, ["authorization: this token has been revoked"])
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


def content_length(headers, limit: int) -> int:
    """The declared body size, checked against `limit` before any of the body is read."""
    if "Transfer-Encoding" in headers:
        raise HttpError(411, ["content-length: required (chunked bodies are not accepted)"])
    values = headers.get_all("Content-Length") or []
    if not values:
        raise HttpError(411, ["content-length: required"])
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        raise HttpError(400, ["content-length: invalid"])
    length = int(values[0])
    if length > limit:
        raise HttpError(413, [f"body: {length} bytes is more than the limit of {limit}"])
    return length
