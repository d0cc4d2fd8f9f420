"""What a notifier says of one attempt: delivered, or failed and whether a retry could help."""

from __future__ import annotations

from typing import NamedTuple


class Outcome(NamedTuple):
    ok: bool
    retryable: bool = False
    detail: str = ""
    retry_after_s: float | None = None  # the receiver asked not to be tried again sooner (Retry-After)
