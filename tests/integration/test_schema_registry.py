"""The schema registry's wire format on a real registry (Apicurio, its Confluent API) and the real broker.

The alert job runs with `--serialization registry`: confluent-kafka's own AvroDeserializer, with its own
SchemaRegistryClient, reads the alerts it wrote, as Kafka Connect or ksqlDB would. The job reads both
framings (its signals are single-object), and sends what it cannot read, an unknown magic byte or an
unknown schema id, to the dead-letter topic with the reason; its alert records are CloudEvents in binary
mode too, with the `--cloudevents-source` it was given. `tocsin schemas register` registers every
schema under its topic's subject with tocsin's compatibility (FULL), which the registry then enforces.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import urllib.request

import pytest
from cloudevents.core.bindings import kafka as kafka_binding
from kafka import KafkaProducer
from prometheus_client import REGISTRY
from typer.testing import CliRunner

from tests.conftest import ROOT, settled
from tocsin.cli import app
from tocsin.config import SerializationSettings
from tocsin.kafka.read import read_topic
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde import wire
from tocsin.serde.avro import decode, default_registry, encode
from tocsin.serde.framing import registry_header, unframe
from tocsin.serde.registry_client import RegistryClient, RegistryError

pytestmark = [pytest.mark.integration]

DAY = 86_400_000
END = 1_700_006_400_000
RULES = {
    "version": 1,
    "rules": [
        {
            "id": "fights",
            "description": "d",
            "kind": "threshold",
            "indicator": "rf1.armed_conflict",
            "window": "1d",
            "levels": {"watch": 3},
        }
    ],
}


def signal(window_end: int, count: int) -> dict:
    return {
        "id": f"rf1.armed_conflict:SDN:{window_end - DAY}-{window_end}",
        "indicator_id": "rf1.armed_conflict",
        "risk_factors": [1],
        "distinct_origins": 1,
        "reported_sources": 3,
        "pane_index": 0,
        "evidence_ids": [f"gdelt2:{window_end}"],
        "emitted_at": window_end + 1000,
        "country": "SDN",
        "region": None,
        "window_start": window_end - DAY,
        "window_end": window_end,
        "count": count,
        "weighted_count": count / 2,
        "fatalities": 0,
        "distinct_sources": 3,
        "pane": "ON_TIME",
        "evidence": [
            {
                "observation_id": f"o{window_end}",
                "source_id": f"gdelt2:{window_end}",
                "title": None,
                "url": "https://example.org/a",
                "origin": "example.org",
                "event_time": window_end - 1000,
            }
        ],
    }


@pytest.fixture
def registry_reads(schema_registry):
    """This process reads registry-framed records through the test's registry (as a command given
    --schema-registry-url does), then goes back to what it had."""
    before = wire.current()
    wire.configure(SerializationSettings(schema_registry_url=schema_registry))
    yield schema_registry
    wire.configure(before)


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.loads(answer.read())


def test_schemas_register_sets_full_compatibility_which_the_registry_enforces(schema_registry):
    runner = CliRunner()
    first = runner.invoke(app, ["schemas", "register", "--schema-registry-url", schema_registry])
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert "tocsin.alerts.v1-value: id " in lines[[i for i, s in enumerate(lines) if "alerts" in s][0]]
    assert all(line.endswith(", FULL") for line in lines)
    assert get(f"{schema_registry}/config/tocsin.alerts.v1-value") == {"compatibilityLevel": "FULL"}
    again = runner.invoke(app, ["schemas", "register", "--schema-registry-url", schema_registry])
    assert again.stdout == first.stdout  # registering the same schemas again changes nothing

    alert_id = int(
        next(s for s in lines if s.startswith("tocsin.alerts.v1-value")).split("id ")[1].split(",")[0]
    )
    registered = json.loads(get(f"{schema_registry}/schemas/ids/{alert_id}")["schema"])
    assert registered == json.loads((SCHEMA_DIR / "alert.avsc").read_text())

    # A field added without a default cannot be read back from older alerts: FULL refuses it.
    broken = copy.deepcopy(registered)
    broken["fields"].append({"name": "note", "type": "string"})
    with pytest.raises(
        RegistryError,
        match=r"^schema registry .*: POST /subjects/tocsin\.alerts\.v1-value/versions: HTTP 409",
    ):
        RegistryClient(schema_registry).register("tocsin.alerts.v1-value", json.dumps(broken))


@pytest.mark.runner
def test_a_confluent_deserializer_reads_the_alerts_tocsin_wrote_with_registry_framing(
    bootstrap, make_topic, start_pipeline, tmp_path, registry_reads
):
    from confluent_kafka import Consumer
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    url = registry_reads
    signals, alerts, dlq = make_topic("signals"), make_topic("alerts"), make_topic("dlq")
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    schema = default_registry().get("IndicatorSignal")
    for day in range(3):  # single-object framed: the job reads both framings
        producer.send(signals, encode(schema, signal(END + day * DAY, 4)))
    producer.send(signals, b"\x07not avro")
    producer.send(signals, registry_header(987_654) + b"\x02")
    producer.flush()
    producer.close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(json.dumps(RULES))

    job = start_pipeline(
        "-m", "tocsin.pipelines.rules.job",
        "--rules", str(rules),
        "--signals-topic", signals,
        "--alerts-topic", alerts,
        "--dead-letter-topic", dlq,
        "--bootstrap-servers", bootstrap,
        "--group-id", "registry-e2e",
        "--serialization", "registry",
        "--schema-registry-url", url,
        "--cloudevents-source", "urn:tocsin:registry-test",
        "--max-out-of-orderness", "1500000000s", "--close-when-idle", "--idle-timeout", "2s",
    )  # fmt: skip
    client = {"bootstrap_servers": bootstrap}
    written = settled(lambda: read_topic(client, alerts), job, 10, 300, "the alerts")
    letters = settled(lambda: read_topic(client, dlq), job, 5, 120, "the dead letters")

    assert all(unframe(r.value).kind == "registry" for r in written + letters)
    ids = {unframe(r.value).writer for r in written}
    versions = get(f"{url}/subjects/{alerts}-value/versions/latest")
    assert ids == {versions["id"]}  # registered under the job's own alert topic (TopicNameStrategy)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "downstream",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([alerts])
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": url}))
    theirs = []
    try:
        while len(theirs) < len(written):
            message = consumer.poll(30)
            assert message is not None, f"read {len(theirs)} of {len(written)} alerts"
            assert message.error() is None, message.error()
            theirs.append(deserialize(message.value(), SerializationContext(alerts, MessageField.VALUE)))
    finally:
        consumer.close()
    ours = [decode(r.value) for r in written]
    assert [a["status"] for a in ours][0] == "FIRING" and ours[0]["rule_id"] == "fights"
    assert theirs == ours

    # Each alert record is also a CloudEvent in binary mode: ce_ headers, the Avro record as its data.
    events = [
        kafka_binding.from_binary_event(kafka_binding.KafkaMessage(dict(r.headers), r.key, r.value))
        for r in written
    ]
    assert {e.get_source() for e in events} == {"urn:tocsin:registry-test"}
    assert [e.get_id() for e in events] == [f"{a['id']}:{a['sequence']}" for a in ours]
    assert [e.get_data() for e in events] == [r.value for r in written]

    # What the job could not read went to the dead-letter topic, with the reason.
    errors = sorted(e for letter in map(decode, (r.value for r in letters)) for e in letter["errors"])
    assert errors == [
        "SerdeError: unknown magic byte 0x07: neither Avro single-object (C3 01) nor registry-framed (00)",
        f"UnknownSchemaId: schema registry {url} has no schema id 987654",
    ]

    # The example consumer resolves these writer schemas too (registry ids, fetched once).
    spec = importlib.util.spec_from_file_location("alert_consumer", ROOT / "examples" / "alert_consumer.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    reader = example.load_reader(str(SCHEMA_DIR / "alert.avsc"))
    writers = example.WriterSchemas([SCHEMA_DIR], url)
    assert [example.decode_alert(r.value, writers, reader) for r in written] == ours


def test_registry_framing_registers_once_and_reads_back_through_the_registry(schema_registry):
    from tocsin.serde import avro, registry_client
    from tocsin.serde.registry_client import UnknownSchemaId

    settings = SerializationSettings(serialization="registry", schema_registry_url=schema_registry)
    schema = default_registry().get("Response")
    record = json.loads((ROOT / "tests" / "fixtures" / "records" / "Response.json").read_text())

    def posts() -> float:
        labels = {"method": "POST", "outcome": "ok"}
        return REGISTRY.get_sample_value("tocsin_schema_registry_requests_total", labels) or 0.0

    before = posts()
    first = encode(schema, record, topic="tocsin.responses.test.v1", settings=settings)
    again = encode(schema, record | {"id": "other"}, topic="tocsin.responses.test.v1", settings=settings)
    assert posts() - before == 1  # registered once, then the id is the process's
    latest = get(f"{schema_registry}/subjects/tocsin.responses.test.v1-value/versions/latest")
    assert unframe(first) == unframe(again)[:2] + (5,) and unframe(first).writer == latest["id"]
    assert get(f"{schema_registry}/subjects/tocsin.responses.test.v1-value/versions") == [1]

    # A reader that has never seen the id fetches the writer schema from the registry, then caches it.
    registry_client._clients.clear()
    avro._by_registry_id.clear()
    before = wire.current()
    wire.configure(settings)
    try:
        assert decode(first) == decode(encode(schema, record))
        with pytest.raises(UnknownSchemaId) as caught:
            decode(registry_header(424_242) + b"\x02")
        assert str(caught.value) == f"schema registry {schema_registry} has no schema id 424242"
    finally:
        wire.configure(before)
