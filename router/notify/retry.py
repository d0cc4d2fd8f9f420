"""The one retry layer: retry a retryable failure with exponential backoff, give up on the others."""

from __future__ import annotations

import time
from collections.abc import Callable

from tocsin.router.notify.outcome import Outcome


def deliver(
    send: Callable[[], Outcome],
    attempts: int,
    backoff_s: float,
    max_backoff_s: float,
    on_attempt: Callable[[int, Outcome, bool], None],
    sleep: Callable[[float], None] = time.sleep,
    first: int = 1,
) -> Outcome:
    """Call send until it succeeds, fails for good, or attempts run out; on_attempt(n, outcome, final).

    `first` > 1 goes on from there (a restarted router whose ledger has the attempts before it)."""
    delay = min(backoff_s * 2 ** (first - 1), max_backoff_s)
    outcome = Outcome(False, False, "not attempted")
    for attempt in range(first, attempts + 1):
        outcome = send()
        final = outcome.ok or not outcome.retryable or attempt == attempts
        on_attempt(attempt, outcome, final)
        if final:
            return outcome
        sleep(delay)
        delay = min(delay * 2, max_backoff_s)
    return outcome
