"""CloudEvents 1.0 around tocsin's alerts, through the CloudEvents SDK (`cloudevents` on PyPI).

Binary content mode on Kafka: an alert record keeps its Avro value as the event's data and carries the
event's attributes as `ce_*` headers (and `content-type`), so CloudEvents consumers (Knative's Kafka
source, the SDKs' Kafka bindings) take tocsin's alert topic as a stream of events without a second copy
of it. The event id is the alert id and its sequence: stable, so an alert state written again (a replay,
a restarted job) is the same event, which CloudEvents consumers de-duplicate on (source, id).
"""

from __future__ import annotations

import datetime as dt

from cloudevents.core.bindings import kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

ALERT_TYPE = "org.tocsin.alert.v1"
AVRO_CONTENT_TYPE = "application/avro"


def _millis(value) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


def alert_event(alert: dict, value: bytes, source: str) -> CloudEvent:
    """The CloudEvent of one alert state whose Avro record is `value`."""
    return CloudEvent(
        attributes={
            "id": f"{alert['id']}:{alert['sequence']}",
            "source": source,
            "type": ALERT_TYPE,
            "subject": alert["id"],
            "time": _millis(alert["last_updated"]),
            "datacontenttype": AVRO_CONTENT_TYPE,
        },
        data=value,
    )


def binary_headers(event: CloudEvent) -> tuple[tuple[str, bytes], ...]:
    """The Kafka headers of an event in binary content mode (its data is the record's value)."""
    message = kafka.to_binary(event, JSONFormat(), key_mapper=lambda _: None)
    return tuple(sorted(message.headers.items()))


def alert_headers(alert: dict, value: bytes, source: str) -> tuple[tuple[str, bytes], ...]:
    return binary_headers(alert_event(alert, value, source))
