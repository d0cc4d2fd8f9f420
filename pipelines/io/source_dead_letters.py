"""The dead letter of a record the Kafka source could not decode (its `dead_letter` output)."""

from __future__ import annotations

from tocsin.serde.dead_letter import dead_letter


def decode_failure(record, exc: Exception) -> dict:
    """The dead letter of a record its decoder rejected: its reason and errors, else the exception."""
    return dead_letter(
        stage="pipeline.source",
        reason=_reason(exc),
        errors=_errors(exc),
        source=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        payload=record.value,
    )


def _reason(exc: Exception) -> str:
    """A decoder's exception may name its dead-letter reason (e.g. normalise-error)."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else "decode-error"


def _errors(exc: Exception) -> list[str]:
    errors = getattr(exc, "errors", None)
    if isinstance(errors, list) and errors and all(isinstance(e, str) for e in errors):
        return errors
    return [f"{type(exc).__name__}: {exc}"]
