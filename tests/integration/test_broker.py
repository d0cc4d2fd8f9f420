"""The real local broker: Avro records through a consumer group that commits and resumes; topics."""

from __future__ import annotations

import json

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from typer.testing import CliRunner

from tests.conftest import FIXTURES, wait_for
from tocsin.cli import app
from tocsin.kafka.topics import load_topics
from tocsin.serde.avro import decode, default_registry, encode

pytestmark = pytest.mark.integration


def incidents(n: int) -> list[dict]:
    base = json.loads((FIXTURES / "records" / "IncidentReport.json").read_text())
    return [base | {"id": f"ucdp-ged:{14863 + i}", "source_record_id": str(14863 + i)} for i in range(n)]


def consume(bootstrap, topic, group, max_records):
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
        max_poll_records=max_records,
    )
    got = []
    for message in consumer:
        got.append(decode(message.value))
        if len(got) == max_records:
            break
    consumer.commit()
    consumer.close()
    return got


def test_avro_records_through_a_consumer_group_resume_after_restart(bootstrap, make_topic):
    topic = make_topic("incidents", partitions=1)
    schema = default_registry().get("IncidentReport")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = incidents(10)
    for record in sent:
        producer.send(topic, key=record["id"].encode(), value=encode(schema, record))
    producer.flush()
    producer.close()

    first = consume(bootstrap, topic, "resume-test", 4)
    assert [r["id"] for r in first] == [r["id"] for r in sent[:4]]
    # A new consumer in the same group (a restarted process) continues after the committed offset.
    second = consume(bootstrap, topic, "resume-test", 100)
    assert [r["id"] for r in second] == [r["id"] for r in sent[4:]]
    assert second[0]["fatalities"] == {"best": 1, "low": 1, "high": 1, "civilians": 1}

    probe = KafkaConsumer(bootstrap_servers=bootstrap, group_id="resume-test")
    assert probe.committed(TopicPartition(topic, 0)) == 10
    probe.close()


def test_topics_create_is_idempotent(bootstrap, admin):
    runner = CliRunner()
    first = runner.invoke(app, ["topics", "create", "--bootstrap-servers", bootstrap])
    assert first.exit_code == 0, first.output
    names = [t.name for t in load_topics().topics]

    def described():  # a topic just created may describe with no partitions until its metadata spreads
        found = {t: len(admin.describe_topics([t])[0]["partitions"]) for t in names}
        return found if all(found.values()) else None

    before = wait_for(described, 30, message="the created topics' metadata")
    second = runner.invoke(app, ["topics", "create", "--bootstrap-servers", bootstrap])
    assert second.exit_code == 0, second.output
    assert [line.split()[0] for line in second.stdout.strip().splitlines()] == ["exists"] * len(names)
    after = {t: len(admin.describe_topics([t])[0]["partitions"]) for t in before}
    assert after == before == {t.name: t.partitions for t in load_topics().topics}
    configs = (
        admin.describe_configs_for_topic("tocsin.ledger.v1")
        if hasattr(admin, "describe_configs_for_topic")
        else None
    )
    assert configs is None or configs["retention.ms"] == "-1"


def _libs():
    import os
    from pathlib import Path

    from tocsin.kafka.local_broker import KAFKA_VERSION

    root = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("TOCSIN_CACHE", root / ".cache")).resolve() / f"kafka-{KAFKA_VERSION}" / "libs"


def test_second_start_reuses_the_running_broker_and_never_touches_another(tmp_path, bootstrap):
    from tocsin.kafka.local_broker import BrokerError, LocalBroker, free_port

    broker = LocalBroker(
        libs_dir=_libs(), data_dir=tmp_path / "a", port=free_port(), controller_port=free_port()
    )
    pid = broker.start()
    try:
        meta = (tmp_path / "a" / "kraft-logs" / "meta.properties").read_text()
        assert broker.start() == pid  # the same broker, storage not formatted again
        assert (tmp_path / "a" / "kraft-logs" / "meta.properties").read_text() == meta
        # Another data dir on the same port: refused with a clear message, the first keeps running.
        other = LocalBroker(
            libs_dir=_libs(), data_dir=tmp_path / "b", port=broker.port, controller_port=free_port()
        )
        with pytest.raises(BrokerError, match=f"port {broker.port} on 127.0.0.1 is already in use"):
            other.start()
        assert broker.running_pid() == pid
    finally:
        assert broker.stop()
    assert broker.running_pid() is None and not broker.stop()
