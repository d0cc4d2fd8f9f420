"""The README's consumer snippet, run as written against the real broker: it reads a tocsin alert with
the writer schema its fingerprint names, and skips, saying so, what it cannot resolve."""

from __future__ import annotations

import functools
import re

import kafka
import pytest

from tests.conftest import ROOT
from tests.unit.test_alert_example_consumer import an_alert, newer_alert_schema
from tocsin.serde.avro import default_registry, encode

pytestmark = pytest.mark.integration


def snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("**Consuming alerts**") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_snippet_reads_alerts_and_skips_what_it_cannot_resolve(
    bootstrap, make_topic, monkeypatch, capsys
):
    topic = make_topic("alerts")
    alert = an_alert()
    newer = newer_alert_schema()
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(topic, encode(default_registry().get("Alert"), alert))
    producer.send(topic, encode(newer, alert | {"note": "n"}))  # a version the service was not given
    producer.send(topic, b"\x00\x00\x00\x00\x05" + b"\x02")  # registry-framed
    producer.flush()
    producer.close()

    code = snippet().replace('"tocsin.alerts.v1"', repr(topic)).replace('"127.0.0.1:9092"', repr(bootstrap))
    assert code != snippet()
    monkeypatch.chdir(ROOT)  # its schemas/ paths are a checkout's (or `tocsin schemas export schemas`)
    # The snippet loops for ever, as a service does: here its consumer stops once the topic is read.
    stops = functools.partial(kafka.KafkaConsumer, consumer_timeout_ms=10_000)
    monkeypatch.setattr(kafka, "KafkaConsumer", stops)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})

    lines = capsys.readouterr().out.splitlines()
    header = encode(newer, alert | {"note": "n"})[:10].hex()
    assert lines == [
        f"{alert['status']} {alert['severity']} {alert['country']} {alert['summary']}",
        f"skipped 1 writer schema {header}",
        "skipped 2 writer schema 000000000502",
    ]
