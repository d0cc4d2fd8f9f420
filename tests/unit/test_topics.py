"""The declarative topic list: naming convention and exact validation messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tocsin.kafka.topics import Replication, TopicList, create_topics, load_topics
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


# -- deployments: the replication `tocsin topics create --deployment` applies ---------------------------


def test_packaged_deployments_put_a_cluster_topic_on_three_brokers_two_in_sync():
    topics = load_topics()
    assert topics.deployments == {
        "single": Replication(replication_factor=1, min_insync_replicas=1),
        "cluster": Replication(replication_factor=3, min_insync_replicas=2),
    }
    new = topics.by_schema("Alert").new_topic(topics.replication("cluster"))
    assert (new.name, new.num_partitions, new.replication_factor, new.topic_configs) == (
        "tocsin.alerts.v1",
        3,
        3,
        {"cleanup.policy": "delete", "retention.ms": "-1", "min.insync.replicas": "2"},
    )


class RecordingAdmin:
    """The two calls create_topics makes of kafka-python's admin client."""

    def __init__(self, existing: list[str]):
        self.existing, self.created = existing, []

    def list_topics(self) -> list[str]:
        return self.existing

    def create_topics(self, new: list) -> None:
        self.created += new


@pytest.mark.parametrize(("deployment", "replicas", "min_isr"), [("single", 1, "1"), ("cluster", 3, "2")])
def test_create_topics_gives_the_missing_topics_the_deployments_replication(deployment, replicas, min_isr):
    topics = load_topics()
    admin = RecordingAdmin(existing=["tocsin.alerts.v1"])
    outcome = create_topics(admin, topics, deployment)
    assert outcome["tocsin.alerts.v1"] == "exists"
    assert [new.name for new in admin.created] == [
        t.name for t in topics.topics if t.name != "tocsin.alerts.v1"
    ]
    assert {(new.replication_factor, new.topic_configs["min.insync.replicas"]) for new in admin.created} == {
        (replicas, min_isr)
    }


def test_an_unknown_deployment_names_the_declared_ones():
    with pytest.raises(KeyError) as caught:
        create_topics(RecordingAdmin([]), load_topics(), "prod")
    assert caught.value.args[0] == "unknown deployment 'prod' (declared: single, cluster)"


def test_a_topic_list_without_deployments_has_the_single_brokers_replication():
    assert TopicList.model_validate({"topics": [entry()]}).deployments == {
        "single": Replication(replication_factor=1, min_insync_replicas=1)
    }


def test_invalid_deployments_are_reported_with_their_paths():
    single = {"replication_factor": 1, "min_insync_replicas": 1}
    assert messages(
        {
            "deployments": {
                "single": single,
                "cluster": {"replication_factor": 2, "min_insync_replicas": 3},
                "big": {"replication_factor": 0, "min_insync_replicas": 1, "acks": "all"},
            },
            "topics": [entry()],
        }
    ) == [
        "deployments.cluster: Value error, min_insync_replicas 3 is more than replication_factor 2: "
        "the brokers would refuse every write",
        "deployments.big.replication_factor: Input should be greater than 0",
        "deployments.big.acks: Extra inputs are not permitted",
    ]
    assert messages({"deployments": {"cluster": single}, "topics": [entry()]}) == [
        "<root>: Value error, deployments: 'single', the default, is not declared"
    ]
