"""The declarative topic list (`tocsin/topics.yaml`): load, validate, and create idempotently, with the
replication of a deployment (its `deployments`: one broker, a cluster)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Literal

import structlog
import yaml
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

log = structlog.get_logger("tocsin.kafka.topics")

TOPIC_NAME = re.compile(r"^tocsin\.[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*\.v[1-9][0-9]*$")
# The deployment `tocsin topics create` (and the demo) apply unless told: one broker.
DEFAULT_DEPLOYMENT = "single"


class Replication(BaseModel):
    """How many brokers keep each partition of a deployment's topics, and how many of them must have a
    record before the broker acknowledges it to an acks=all producer (every tocsin producer is one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    replication_factor: int = Field(gt=0)
    min_insync_replicas: int = Field(gt=0)

    @model_validator(mode="after")
    def _enough_replicas(self) -> Replication:
        if self.min_insync_replicas > self.replication_factor:
            raise ValueError(
                f"min_insync_replicas {self.min_insync_replicas} is more than replication_factor "
                f"{self.replication_factor}: the brokers would refuse every write"
            )
        return self


class Topic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    schema_name: str = Field(alias="schema")
    partitions: int = Field(gt=0)
    retention_ms: int
    cleanup: Literal["delete", "compact", "compact,delete"]
    purpose: str

    @field_validator("name")
    @classmethod
    def _name_convention(cls, value: str) -> str:
        if not TOPIC_NAME.match(value):
            raise ValueError(f"topic name {value!r} does not follow tocsin.<entity>.v<N>")
        return value

    @field_validator("retention_ms")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value != -1 and value <= 0:
            raise ValueError("retention_ms must be positive, or -1 to keep forever")
        return value

    def configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup, "retention.ms": str(self.retention_ms)}

    def new_topic(self, replication: Replication) -> NewTopic:
        """The topic as the deployment creates it: its partitions on `replication_factor` brokers each."""
        configs = self.configs() | {"min.insync.replicas": str(replication.min_insync_replicas)}
        return NewTopic(self.name, self.partitions, replication.replication_factor, topic_configs=configs)


class TopicList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # A topic list of its own (--topics-file) that names no deployments has the one broker's.
    deployments: dict[str, Replication] = Field(
        default_factory=lambda: {DEFAULT_DEPLOYMENT: Replication(replication_factor=1, min_insync_replicas=1)}
    )
    topics: list[Topic]

    @model_validator(mode="after")
    def _unique(self) -> TopicList:
        seen: set[str] = set()
        for topic in self.topics:
            if topic.name in seen:
                raise ValueError(f"topic {topic.name} is declared twice")
            seen.add(topic.name)
        return self

    @model_validator(mode="after")
    def _default_deployment(self) -> TopicList:
        if DEFAULT_DEPLOYMENT not in self.deployments:
            raise ValueError(f"deployments: {DEFAULT_DEPLOYMENT!r}, the default, is not declared")
        return self

    def replication(self, deployment: str) -> Replication:
        """The deployment's replication; a KeyError naming the declared ones for another name."""
        try:
            return self.deployments[deployment]
        except KeyError:
            declared = ", ".join(self.deployments)
            raise KeyError(f"unknown deployment {deployment!r} (declared: {declared})") from None

    def by_schema(self, schema_name: str) -> Topic:
        for topic in self.topics:
            if topic.schema_name == schema_name:
                return topic
        raise KeyError(schema_name)


def load_topics(path: Path | None = None) -> TopicList:
    text = Path(path).read_text() if path else resources.files("tocsin").joinpath("topics.yaml").read_text()
    return TopicList.model_validate(yaml.safe_load(text))


def create_topics(admin, topics: TopicList, deployment: str = DEFAULT_DEPLOYMENT) -> dict[str, str]:
    """Create the missing topics with the deployment's replication; leave existing ones (their
    replication too). Returns {topic: 'created' | 'exists'}."""

    replication = topics.replication(deployment)
    existing = set(admin.list_topics())
    outcome: dict[str, str] = {}
    missing = []
    for topic in topics.topics:
        if topic.name in existing:
            outcome[topic.name] = "exists"
        else:
            missing.append(topic.new_topic(replication))
    for new in missing:
        try:
            admin.create_topics([new])
            outcome[new.name] = "created"
        except TopicAlreadyExistsError:  # created concurrently by another process: same end state
            outcome[new.name] = "exists"
    for name, state in outcome.items():
        log.info("topic", topic=name, state=state)
    return outcome


# ------------------------------------------------------------------------------------------- topic names
# Every stage names its topics by these constants: topics.yaml is their one home (a new vN of a record
# is a change there, and every default follows).


def _packaged_name(schema_name: str) -> str:
    return _PACKAGED.by_schema(schema_name).name


_PACKAGED = load_topics()
INCIDENTS = _packaged_name("IncidentReport")
NEWS = _packaged_name("NewsItem")
OBSERVATIONS = _packaged_name("Observation")
SIGNALS = _packaged_name("IndicatorSignal")
ALERTS = _packaged_name("Alert")
NOTIFICATIONS = _packaged_name("Notification")
RESPONSES = _packaged_name("Response")
LEDGER = _packaged_name("LedgerEntry")
LEDGER_CHECKPOINTS = _packaged_name("LedgerCheckpoint")
DEAD_LETTERS = _packaged_name("DeadLetter")
CONNECTOR_STATE = _packaged_name("ConnectorCursor")
