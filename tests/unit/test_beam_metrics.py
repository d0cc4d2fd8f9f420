"""The pipelines' counters (the indicator and alert DoFns', and their Kafka source's, sink's,
committer's and dead letters') count as Beam metrics too (what reaches Flink's or
Dataflow's own metrics, where the workers serve no /metrics), beside the Prometheus counter, with one call."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import MetricsFilter
from prometheus_client import REGISTRY

from tocsin.pipelines.indicators import slices, transforms
from tocsin.pipelines.io import commit, dead_letters, kafka_sink, source_read
from tocsin.pipelines.rules import transforms as rules
from tocsin.pipelines.rules.transforms import _counted
from tocsin.telemetry.beam_metrics import NAMESPACE, PipelineCounter, beam_metric_name, pipeline_counter

PIPELINE_COUNTERS = {
    slices: ("OBSERVATIONS", "UNLOCATED", "HITS", "SPANS_TOO_LONG"),
    transforms: ("SIGNALS", "SUPPRESSED"),
    rules: ("ALERTS", "EVALUATIONS"),
    source_read: ("RECORDS_CONSUMED", "LATE_RECORDS", "DECODE_ERRORS"),
    kafka_sink: ("RECORDS_PRODUCED", "DELIVERY_ERRORS"),
    commit: ("OFFSETS_COMMITTED",),
    dead_letters: ("DEAD_LETTERS",),
}


def _beam_counters(result) -> dict[str, int]:
    found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    return {c.key.metric.name: c.committed for c in found}


def test_every_counter_of_the_pipelines_dofns_and_their_kafka_io_is_a_beam_metric_too():
    for module, names in PIPELINE_COUNTERS.items():
        for name in names:
            assert isinstance(getattr(module, name), PipelineCounter), f"{module.__name__}.{name}"


def test_the_alert_counter_reaches_the_runner_and_prometheus():
    alert = {"rule_id": "beam-metrics-test", "status": "FIRING", "severity": "high"}
    labels = {"rule": "beam-metrics-test", "status": "FIRING", "severity": "high"}
    before = REGISTRY.get_sample_value("tocsin_alerts_total", labels) or 0
    pipeline = beam.Pipeline(runner="DirectRunner")
    _ = pipeline | beam.Create([alert] * 3) | beam.FlatMap(lambda a: _counted([a]))
    result = pipeline.run()
    result.wait_until_finish()
    name = 'tocsin_alerts_total{rule="beam-metrics-test",status="FIRING",severity="high"}'
    assert _beam_counters(result)[name] == 3
    assert REGISTRY.get_sample_value("tocsin_alerts_total", labels) == before + 3  # in-process runner


def test_a_counter_without_labels_is_its_bare_name_and_values_are_quoted():
    plain = pipeline_counter("beamtest_plain_total", "test")
    assert pipeline_counter("beamtest_plain_total", "test") is plain  # one per name, as workers re-import
    pipeline = beam.Pipeline(runner="DirectRunner")
    _ = pipeline | beam.Create([1, 2]) | beam.Map(lambda n: plain.inc(n))
    result = pipeline.run()
    result.wait_until_finish()
    assert _beam_counters(result)["beamtest_plain_total"] == 3
    assert beam_metric_name("x_total", ("a", "b"), ('q"uote', "1")) == 'x_total{a="q\\"uote",b="1"}'


def test_outside_a_pipeline_only_prometheus_counts():
    counted = pipeline_counter("beamtest_outside_total", "test", ["kind"])
    counted.labels("k").inc(2)  # no bundle running: Beam's half is a no-op, as Beam's own counters are
    assert REGISTRY.get_sample_value("beamtest_outside_total", {"kind": "k"}) == 2


def test_the_kafka_io_counters_reach_the_runner_under_the_series_names():
    pipeline = beam.Pipeline(runner="DirectRunner")
    _ = (
        pipeline
        | beam.Create([3, 4])
        | beam.Map(lambda n: source_read.RECORDS_CONSUMED.labels("t.v1").inc(n))
    )
    result = pipeline.run()
    result.wait_until_finish()
    assert _beam_counters(result)['tocsin_kafka_records_consumed_total{topic="t.v1"}'] == 7
