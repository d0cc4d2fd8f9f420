"""The one retry rule: after a retryable failure, exponential backoff with jitter, honouring Retry-After.

The router does not sleep between attempts: a failed attempt's ledger entry records the delay, and the
channel's lane (router/lanes.py) makes the next attempt when it is due, so a retry holds back that
channel only, and a restarted router waits out the same delay (router/outbox.py)."""

from __future__ import annotations

import hashlib

from tocsin.router.notify.outcome import Outcome


def is_final(outcome: Outcome, attempt: int, attempts: int) -> bool:
    """Delivered, failed in a way a retry cannot help, or out of attempts."""
    return outcome.ok or not outcome.retryable or attempt >= attempts


def retry_delay(
    attempt: int, backoff_s: float, max_backoff_s: float, key: str, retry_after_s: float | None = None
) -> float:
    """Seconds from a failed `attempt` (1, 2, ...) to the next: exponential backoff capped at
    `max_backoff_s`, less up to a fifth of it as jitter (so channels that failed together do not retry
    in step), and never sooner than a receiver's Retry-After (honoured up to `max_backoff_s`). The
    jitter is drawn from `key` (the delivery's id) and the attempt, not from a random source: the same
    delay whether computed by the router that failed or by one restarted from its ledger."""
    delay = min(backoff_s * 2 ** (attempt - 1), max_backoff_s)
    digest = hashlib.sha256(f"{key}:{attempt}".encode()).digest()
    delay *= 1 - 0.2 * int.from_bytes(digest[:4], "big") / 2**32
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, max_backoff_s))
    return round(delay, 3)
