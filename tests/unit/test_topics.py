"""The declarative topic list: naming convention and exact validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tocsin.kafka.topics import TopicList, load_topics
from tocsin.serde.avro import default_registry


def test_packaged_topics_cover_every_entity_and_schema():
    topics = load_topics()
    names = [t.name for t in topics.topics]
    assert names == [
        "tocsin.incidents.raw.v1",
        "tocsin.news.raw.v1",
        "tocsin.observations.v1",
        "tocsin.signals.v1",
        "tocsin.alerts.v1",
        "tocsin.notifications.v1",
        "tocsin.responses.v1",
        "tocsin.ledger.v1",
        "tocsin.ledger.checkpoints.v1",
        "tocsin.deadletter.v1",
        "tocsin.connector.state.v1",
    ]
    assert {t.schema_name for t in topics.topics} == set(default_registry().by_name)
    ledger = topics.by_schema("LedgerEntry")
    assert ledger.partitions == 1 and ledger.configs() == {"cleanup.policy": "delete", "retention.ms": "-1"}


def entry(**overrides):
    base = {
        "name": "tocsin.alerts.v1",
        "schema": "Alert",
        "partitions": 3,
        "retention_ms": -1,
        "cleanup": "delete",
        "purpose": "x",
    }
    return base | overrides


def messages(data) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        TopicList.model_validate(data)
    return [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in caught.value.errors()]


def test_invalid_topics_are_reported_with_their_paths():
    assert messages(
        {
            "topics": [
                entry(name="alerts"),
                entry(partitions=0),
                entry(retention_ms=0),
                entry(cleanup="archive"),
                entry(owner="me"),
            ]
        }
    ) == [
        "topics.0.name: Value error, topic name 'alerts' does not follow tocsin.<entity>.v<N>",
        "topics.1.partitions: Input should be greater than 0",
        "topics.2.retention_ms: Value error, retention_ms must be positive, or -1 to keep forever",
        "topics.3.cleanup: Input should be 'delete', 'compact' or 'compact,delete'",
        "topics.4.owner: Extra inputs are not permitted",
    ]


def test_duplicate_topics_are_rejected():
    assert messages({"topics": [entry(), entry()]}) == [
        "<root>: Value error, topic tocsin.alerts.v1 is declared twice"
    ]
