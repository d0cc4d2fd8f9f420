"""`tocsin alerts tail`: subscribe to the alert topic and print each alert event; the example consumer.

A downstream service needs only this: a Kafka consumer on tocsin.alerts.v1 and the published Alert schema
(schemas/alert.avsc, Avro single-object encoding: the schema is named by the fingerprint in each message).
Alerts are keyed by id; keep the highest `sequence` per id for the current state.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer

from tocsin.serde.avro import decode


def tail(
    client: dict,
    topic: str,
    show: Callable[[dict], None],
    *,
    from_beginning: bool = False,
    max_alerts: int | None = None,
    idle_timeout_s: float | None = None,
) -> int:
    """Print alerts as they come; return how many. Stops after max_alerts, or idle_timeout_s of silence."""

    consumer = KafkaConsumer(
        topic,
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client,
    )
    seen, last = 0, time.monotonic()
    try:
        while max_alerts is None or seen < max_alerts:
            batches = consumer.poll(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    show(decode(record.value))
                    seen += 1
                    last = time.monotonic()
            if idle_timeout_s is not None and time.monotonic() - last > idle_timeout_s:
                break
    finally:
        consumer.close()
    return seen
