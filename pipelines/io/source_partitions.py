"""Listing the partitions of the source's topics and dealing them to its shards (readers)."""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.consumer import PartitionConsumer
from tocsin.pipelines.io.source_config import SourceConfig
from tocsin.pipelines.io.source_restriction import Shard


def open_consumer(config: SourceConfig) -> PartitionConsumer:
    return PartitionConsumer(config.client, config.group_id)


def deal(partitions: list, shards: int) -> list[Shard]:
    """Partitions dealt round-robin to `shards` readers (at most one per partition, at least one)."""
    count = max(1, min(shards, len(partitions)))
    return [Shard(tuple(partitions[i::count])) for i in range(count)]


class ListPartitions(beam.DoFn):
    """Deal the partitions of the topics to `shards` readers (one by default: see ShardOffsets)."""

    def __init__(self, config: SourceConfig):
        self.config = config

    def process(self, _):
        consumer = open_consumer(self.config)
        try:
            partitions = [(topic, p) for topic in self.config.topics for p in consumer.partitions(topic)]
        finally:
            consumer.close()
        yield from deal(partitions, self.config.shards)
