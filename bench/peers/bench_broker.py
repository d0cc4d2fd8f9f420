"""The one Apache Kafka broker of a bench run: tocsin's own local broker, on free ports, in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

from systems import ROOT


def start_broker(data_dir: Path):
    from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port

    cache = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache"))
    cache = cache if cache.is_absolute() else ROOT / cache
    broker = LocalBroker(
        libs_dir=cache / f"kafka-{KAFKA_VERSION}" / "libs",
        data_dir=data_dir,
        port=free_port(),
        controller_port=free_port(),
        heap="1g",
    )
    broker.start()
    return broker, KAFKA_VERSION


def create_topics(bootstrap: str, topics: dict[str, int]) -> None:
    """Topics with the given partition counts, kept forever: the data's event times are in 2024 and
    time-based retention would otherwise delete them as soon as it looked."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        existing = set(admin.list_topics())
        new = [
            NewTopic(name, partitions, 1, topic_configs={"retention.ms": "-1"})
            for name, partitions in topics.items()
            if name not in existing
        ]
        if new:
            admin.create_topics(new)
    finally:
        admin.close()
