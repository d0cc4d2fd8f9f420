"""Raw consume ceiling: read every record of a topic and json.loads its value; no windows, no output.

    raw_consume.py --client kafka-python|confluent-kafka --bootstrap-servers H:P --topic T --records N

Reads all partitions from the beginning (assigned, no consumer group) until N records were read, and
prints one JSON line: records, seconds from the first record fetched to the last, records per second.
Runs with tocsin's venv for kafka-python (tocsin's own client) and bench/peers/.venvs/raw for
confluent-kafka (librdkafka).
"""

from __future__ import annotations

import argparse
import json
import time


def kafka_python(bootstrap: str, topic: str, records: int) -> tuple[int, float, float]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_bytes=52_428_800,
        max_partition_fetch_bytes=8_388_608,
    )
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    seen, first = 0, None
    while seen < records:
        for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
            if first is None:
                first = time.perf_counter()
            for record in batch:
                json.loads(record.value)
            seen += len(batch)
    last = time.perf_counter()
    consumer.close()
    return seen, first, last


def confluent(bootstrap: str, topic: str, records: int) -> tuple[int, float, float]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "peers-raw-unused",  # required by librdkafka; nothing is committed
            "enable.auto.commit": False,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(partitions)])
    seen, first = 0, None
    while seen < records:
        # Never ask for more than remain: consume() waits its whole timeout for a batch it can't fill.
        batch = consumer.consume(num_messages=min(5000, records - seen), timeout=0.5)
        if batch and first is None:
            first = time.perf_counter()
        for message in batch:
            if message.error() is None:
                json.loads(message.value())
                seen += 1
    last = time.perf_counter()
    consumer.close()
    return seen, first, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--client", choices=("kafka-python", "confluent-kafka"), required=True)
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--records", type=int, required=True)
    args = parser.parse_args()
    consume = kafka_python if args.client == "kafka-python" else confluent
    seen, first, last = consume(args.bootstrap_servers, args.topic, args.records)
    print(
        json.dumps({"records": seen, "seconds": last - first, "records_per_s": seen / (last - first)}),
        flush=True,
    )


if __name__ == "__main__":
    main()
