"""WriteToKafka's DoFn against the real broker: records land with keys and headers, refusals fail."""

from __future__ import annotations

import pytest

from tocsin.kafka.read import read_topic
from tocsin.pipelines.io.kafka_sink import OutRecord, SinkError, _Write

pytestmark = pytest.mark.integration


def write(bootstrap, topic, records, **extra):
    sink = _Write({"bootstrap_servers": bootstrap}, topic, extra)
    sink.setup()
    try:
        sink.start_bundle()
        for record in records:
            sink.process(record)
        sink.finish_bundle()
    finally:
        sink.teardown()


def test_records_land_with_keys_and_headers(bootstrap, make_topic):
    topic = make_topic("sink")
    write(
        bootstrap,
        topic,
        [OutRecord(b"SDN@0", b"3", (("content-type", b"application/json"),)), OutRecord(None, b"x")],
    )
    records = read_topic({"bootstrap_servers": bootstrap}, topic)
    assert [(r.key, r.value) for r in records] == [(b"SDN@0", b"3"), (None, b"x")]
    assert list(records[0].headers) == [("content-type", b"application/json")]


def test_a_record_the_broker_refuses_fails_the_bundle(bootstrap, make_topic):
    topic = make_topic("sink")
    too_big = b"x" * (2 * 1024 * 1024)  # over the broker's 1 MiB message limit
    with pytest.raises(SinkError, match=f"^1 of 2 records to {topic} were not acknowledged: "):
        write(
            bootstrap,
            topic,
            [OutRecord(b"ok", b"fine"), OutRecord(b"big", too_big)],
            max_request_size=8 * 1024 * 1024,
        )
