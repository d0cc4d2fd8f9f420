"""Read a whole topic as it is now: every committed record of every partition, up to the current end."""

from __future__ import annotations

from kafka import KafkaConsumer, TopicPartition


def read_topic(client: dict, topic: str, isolation_level: str = "read_committed") -> list:
    """Every record of `topic` from the beginning to the end offsets at call time (read_committed;
    `read_uncommitted` includes aborted transactions, for tests that count them).

    For small topics: cursors, test checks, demo summaries. Streaming readers use the Beam source.
    """

    consumer = KafkaConsumer(isolation_level=isolation_level, enable_auto_commit=False, **client)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist: run `tocsin topics create`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records = []
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for batch in consumer.poll(timeout_ms=1000).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
