"""The Kafka source's reading client, on confluent-kafka (librdkafka).

The rest of tocsin speaks kafka-python; the source's hot loop does not. Measured side by side on the
project's broker (bench/out/peers.json, "raw" columns), librdkafka fetches, decompresses and parses
record batches in its own threads, outside the GIL, while kafka-python parses every record in pure
Python in the thread that must also run the pipeline: the reader would spend most of its core there.

Manual assignment only (the runner, not a group rebalance, decides where a partition is read),
read_committed (connectors write in transactions), offsets never committed here (see commit.py).
Partitions are (topic, partition) tuples throughout.
"""

from __future__ import annotations

import json
import logging

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from kafka import KafkaConsumer
from kafka import TopicPartition as KafkaTopicPartition

from tocsin.client_properties import librdkafka_spelling

TIMEOUT_S = 10.0

# kafka-python's client settings (tocsin.config.KafkaSettings.client_config) -> librdkafka's names.
_NAMES = {
    "security_protocol": "security.protocol",
    "client_id": "client.id",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}
# kafka-python's wait for a first broker: librdkafka has none to set (each call here has its own timeout,
# TIMEOUT_S), so it is left out rather than refused.
_KAFKA_PYTHON_ONLY = {"bootstrap_timeout_ms"}


def librdkafka_config(client: dict) -> dict:
    """The same connection settings in librdkafka's spelling; an unknown setting is refused by name."""
    config = {}
    for name, value in client.items():
        if value is None or name in _KAFKA_PYTHON_ONLY:
            continue
        if name == "bootstrap_servers":
            config["bootstrap.servers"] = value if isinstance(value, str) else ",".join(value)
        elif name in _NAMES:
            config[_NAMES[name]] = str(value)
        elif name == "sasl_oauth_token_provider":
            # The same provider as kafka-python's (tocsin.oidc): librdkafka calls it for each token.
            config["oauth_cb"] = value
        elif (spelled := librdkafka_spelling(name, value)) is not None:  # a client-properties file's
            config[spelled[0]] = spelled[1]
        else:
            raise ValueError(f"Kafka client setting {name!r} has no librdkafka equivalent in tocsin's source")
    return config


class PartitionConsumer:
    """Reads assigned partitions from given offsets; knows their committed, first and end offsets."""

    def __init__(self, client: dict, group_id: str):
        self._client, self._group_id = client, group_id
        self._commits: KafkaConsumer | None = None  # kafka-python, for committed(): see there
        self._consumer = Consumer(
            {
                **librdkafka_config(client),
                "group.id": group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "max.partition.fetch.bytes": 8_388_608,
                # The end of a partition is reported with the fetch position, which moves past
                # transaction markers: the offset after the last record read never reaches the end
                # offset of a transactionally written partition (see read()).
                "enable.partition.eof": True,
                # librdkafka's own log lines go through the logging tree (structlog renders them).
                "logger": logging.getLogger("tocsin.source.librdkafka"),
            }
        )

    def close(self) -> None:
        self._consumer.close()
        if self._commits is not None:
            self._commits.close()

    def partitions(self, topic: str) -> list[int]:
        metadata = self._consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise ValueError(f"topic {topic} does not exist (create it with `tocsin topics create`)")
        return sorted(metadata.partitions)

    def committed(self, tp: tuple) -> tuple[int, str | None] | None:
        """(offset, metadata) committed for the group, or None.

        Read with kafka-python, which wrote it (io/commit.py): librdkafka reads a commit's metadata as a C
        string and can return bytes past its end (librdkafka #4649), which made a restarted job fail on
        undecodable metadata now and then."""
        if self._commits is None:  # one client for every partition's commit, made when first needed
            self._commits = KafkaConsumer(group_id=self._group_id, enable_auto_commit=False, **self._client)
        found = self._commits.committed(KafkaTopicPartition(*tp), metadata=True)
        if found is None or found.offset is None or found.offset < 0:
            return None
        return found.offset, found.metadata or None

    def first_and_end(self, tp: tuple) -> tuple[int, int]:
        return self._consumer.get_watermark_offsets(TopicPartition(*tp), timeout=TIMEOUT_S, cached=False)

    def end_offsets(self, tps) -> dict:
        return {tp: self.first_and_end(tp)[1] for tp in tps}

    def offset_at(self, tp: tuple, timestamp_ms: int) -> int:
        """The first offset with a timestamp at or after `timestamp_ms`; the end offset if none."""
        (found,) = self._consumer.offsets_for_times([TopicPartition(*tp, timestamp_ms)], timeout=TIMEOUT_S)
        return found.offset if found.offset >= 0 else self.first_and_end(tp)[1]

    def resume_point(self, tp: tuple, start: str, start_if_uncommitted: str) -> tuple[int, int | None]:
        """Start offset of a partition and, when resuming from a commit, the watermark recorded with it."""
        if start == "committed":
            committed = self.committed(tp)
            if committed is not None:
                return committed[0], _committed_watermark(committed[1])
            start = start_if_uncommitted
        if start == "earliest":
            return self.first_and_end(tp)[0], None
        if start == "latest":
            return self.first_and_end(tp)[1], None
        if start.startswith("timestamp:"):
            return self.offset_at(tp, int(start.split(":", 1)[1])), None
        raise ValueError(
            f"unknown start position {start!r}: use committed, earliest, latest or timestamp:<ms>"
        )

    def assign(self, positions: dict) -> None:
        """Read each partition from its offset (replacing any earlier assignment)."""
        self._consumer.assign([TopicPartition(t, p, o) for (t, p), o in positions.items()])

    def read(self, max_records: int, timeout_s: float) -> tuple[dict, dict]:
        """({(topic, partition): [message, ...]} of up to `max_records` records, in offset order, and
        {(topic, partition): offset} of the partitions whose end was reached, at that offset)."""
        by_partition: dict = {}
        at_end: dict = {}
        for message in self._consumer.consume(max_records, timeout_s):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    at_end[(message.topic(), message.partition())] = message.offset()
                    continue
                raise KafkaException(error)
            tp = (message.topic(), message.partition())
            batch = by_partition.get(tp)
            if batch is None:
                by_partition[tp] = [message]
            else:
                batch.append(message)
        return by_partition, at_end


def _committed_watermark(metadata: str | None) -> int | None:
    if not metadata:
        return None
    try:
        return int(json.loads(metadata)["wm"])
    except (ValueError, KeyError, TypeError):
        return None
