"""The Kafka I/O's counters, each counted twice with one call: the Prometheus series of the job's process
(shared with the connectors and the router: the same names) and a Beam metric, which reaches the
runner's own metrics where the source, sink and committer run in workers that serve no /metrics (Flink,
Dataflow; tocsin.telemetry.beam_metrics)."""

from __future__ import annotations

from tocsin.telemetry.beam_metrics import pipeline_counter

RECORDS_CONSUMED = pipeline_counter(
    "tocsin_kafka_records_consumed_total", "Records read from Kafka", ["topic"]
)
RECORDS_PRODUCED = pipeline_counter(
    "tocsin_kafka_records_produced_total", "Records acknowledged by Kafka", ["topic"]
)
OFFSETS_COMMITTED = pipeline_counter(
    "tocsin_kafka_offset_commits_total", "Offset commits made once output was durable", ["topic"]
)
DEAD_LETTERS = pipeline_counter(
    "tocsin_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason"]
)
LATE_RECORDS = pipeline_counter(
    "tocsin_source_late_records_total", "Records older than their partition's watermark", ["topic"]
)
DECODE_ERRORS = pipeline_counter(
    "tocsin_source_decode_errors_total", "Records the source could not decode", ["topic"]
)
DELIVERY_ERRORS = pipeline_counter(
    "tocsin_sink_delivery_errors_total", "Records Kafka did not acknowledge", ["topic"]
)
