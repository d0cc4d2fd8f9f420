"""Build DeadLetter records (schemas/dead_letter.avsc): the reason, every error, and the raw excerpt."""

from __future__ import annotations

import datetime as dt
import uuid

MAX_PAYLOAD = 64 * 1024


def dead_letter(
    *,
    stage: str,
    reason: str,
    errors: list[str],
    payload: bytes | str | None,
    source: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    key: bytes | None = None,
) -> dict:
    if payload is None:
        payload = b""
    if isinstance(payload, str):
        payload = payload.encode("utf-8", errors="replace")
    return {
        "id": str(uuid.uuid4()),
        "at": dt.datetime.now(dt.UTC),
        "stage": stage,
        "reason": reason,
        "errors": list(errors),
        "source": source,
        "partition": partition,
        "offset": offset,
        "key": key,
        "payload": bytes(payload[:MAX_PAYLOAD]),
        "payload_truncated": len(payload) > MAX_PAYLOAD,
    }
