"""CloudEvents: an alert record as a binary-mode event (ce_ headers, read back by the CloudEvents SDK's
own Kafka binding), and one `source` setting for the Kafka headers and the webhook's structured events."""

from __future__ import annotations

import json

import pytest
from cloudevents.core.bindings import kafka
from typer.testing import CliRunner

from tests.unit.test_alert_example_consumer import an_alert
from tocsin.cli import app
from tocsin.config import SerializationSettings
from tocsin.router.config import Webhook
from tocsin.router.notify.payload import Message
from tocsin.router.notify.webhook import WebhookNotifier
from tocsin.serde import wire
from tocsin.serde.avro import decode, default_registry, encode
from tocsin.serde.cloudevents import alert_headers


@pytest.fixture
def restore_wire():
    before = wire.current()
    yield
    wire.configure(before)


def test_an_alert_record_is_a_binary_mode_cloudevent():
    alert = an_alert()
    value = encode(default_registry().get("Alert"), alert)
    headers = alert_headers(alert, value, "urn:tocsin:ocha-prod")
    assert dict(headers) == {
        "ce_id": f"{alert['id']}:{alert['sequence']}".encode(),
        "ce_source": b"urn:tocsin:ocha-prod",
        "ce_specversion": b"1.0",
        "ce_subject": alert["id"].encode(),
        "ce_time": b"2023-11-15T00:00:00Z",
        "ce_type": b"org.tocsin.alert.v1",
        "content-type": b"application/avro",
    }
    # The SDK's own Kafka binding reads it back: the event's data is the Avro record, unchanged.
    event = kafka.from_binary_event(kafka.KafkaMessage(headers=dict(headers), key=None, value=value))
    assert (event.get_source(), event.get_type(), event.get_datacontenttype()) == (
        "urn:tocsin:ocha-prod",
        "org.tocsin.alert.v1",
        "application/avro",
    )
    assert decode(event.get_data()) == decode(value)


def test_the_same_alert_state_is_the_same_event_id():
    # CloudEvents consumers de-duplicate on (source, id): a replayed alert state must not be a new event.
    alert = an_alert()
    value = encode(default_registry().get("Alert"), alert)
    assert alert_headers(alert, value, "s") == alert_headers(dict(alert), value, "s")
    later = alert | {"sequence": alert["sequence"] + 1}
    assert dict(alert_headers(later, value, "s"))["ce_id"] != dict(alert_headers(alert, value, "s"))["ce_id"]


def webhook_event() -> dict:
    alert = an_alert() | {"status": "FIRING"}
    message = Message("ops", "g", {"country": "SDN"}, [alert])
    return json.loads(WebhookNotifier(Webhook(url="http://x", format="cloudevents")).render(message))


def test_the_webhook_cloudevent_names_the_configured_source(restore_wire):
    wire.configure(SerializationSettings())
    assert webhook_event()["source"] == "tocsin"
    wire.configure(SerializationSettings(cloudevents_source="urn:tocsin:ocha-prod"))
    assert webhook_event()["source"] == "urn:tocsin:ocha-prod"


def test_the_source_is_one_flag_of_tocsin_and_of_the_jobs(restore_wire, monkeypatch):
    monkeypatch.delenv("TOCSIN_CLOUDEVENTS_SOURCE", raising=False)
    result = CliRunner().invoke(app, ["--cloudevents-source", "urn:tocsin:a", "topics", "list"])
    assert result.exit_code == 0, result.output
    assert wire.current().cloudevents_source == "urn:tocsin:a"
    monkeypatch.setenv("TOCSIN_CLOUDEVENTS_SOURCE", "urn:tocsin:b")
    assert SerializationSettings().cloudevents_source == "urn:tocsin:b"

    from tocsin.pipelines.options import KafkaOptions

    opts = KafkaOptions(["--cloudevents-source", "urn:tocsin:c", "--serialization", "registry"])
    assert (opts.cloudevents_source, opts.serialization) == ("urn:tocsin:c", "registry")


def test_an_empty_source_is_refused_in_one_line(restore_wire):
    result = CliRunner().invoke(app, ["--cloudevents-source", "", "topics", "list"])
    assert result.exit_code == 1
    assert result.stderr == "error: cloudevents_source: String should have at least 1 character\n"
