"""Counters of the Beam jobs' DoFns, counted twice with one call: as the Prometheus counter of the
process (its /metrics, --metrics-port) and as a Beam metric (apache_beam.metrics.Metrics.counter).

On Prism the DoFns run in the job's own process, so /metrics sees them; on Flink or Dataflow they run in
worker processes that serve no endpoint, and only the Beam metric reaches the runner's own metrics system
(Flink's reporters, Dataflow's job metrics) and `PipelineResult.metrics()`. The Beam metric is in the
namespace `tocsin`, named as the Prometheus series, its labels in Prometheus' text form:
`tocsin_alerts_total{rule="r",status="FIRING",severity="high"}` (a counter without labels: its bare name).
Outside a running bundle (a back-test folding in-process) the Beam half counts nothing, as Beam's does.
"""

from __future__ import annotations

import threading

from apache_beam.metrics import Metrics

from tocsin.telemetry.metrics import counter

NAMESPACE = "tocsin"


def beam_metric_name(name: str, labelnames: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not labelnames:
        return name
    labels = ",".join(f'{label}="{_escaped(value)}"' for label, value in zip(labelnames, values, strict=True))
    return f"{name}{{{labels}}}"


def _escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class _Child:
    __slots__ = ("beam", "prometheus")

    def __init__(self, prometheus, beam):
        self.prometheus = prometheus
        self.beam = beam

    def inc(self, amount: int = 1) -> None:
        self.prometheus.inc(amount)
        self.beam.inc(amount)


class PipelineCounter:
    """`counter(...)` of tocsin.telemetry.metrics with a Beam counter beside it: `.labels(*values).inc()`
    or `.inc()`, as a prometheus_client Counter is used."""

    def __init__(self, name: str, documentation: str, labelnames=()):
        self.name = name
        self.labelnames = tuple(labelnames)
        self.prometheus = counter(name, documentation, labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()

    def labels(self, *values) -> _Child:
        key = tuple(str(v) for v in values)
        child = self._children.get(key)
        if child is None:
            with self._lock:
                child = self._children.get(key)
                if child is None:
                    prometheus = self.prometheus.labels(*key) if self.labelnames else self.prometheus
                    beam = Metrics.counter(NAMESPACE, beam_metric_name(self.name, self.labelnames, key))
                    child = self._children[key] = _Child(prometheus, beam)
        return child

    def inc(self, amount: int = 1) -> None:
        if self.labelnames:
            raise ValueError(f"{self.name} has labels {self.labelnames}: count with .labels(...).inc()")
        self.labels().inc(amount)

    def __reduce__(self):  # a DoFn pickled with it takes the module's counter on the worker, not a copy
        return (pipeline_counter, (self.name, self.prometheus._documentation, self.labelnames))


_counters: dict[str, PipelineCounter] = {}
_counters_lock = threading.Lock()


def pipeline_counter(name: str, documentation: str, labelnames=()) -> PipelineCounter:
    """The one PipelineCounter of this name in the process (Beam workers re-import the modules)."""
    with _counters_lock:
        found = _counters.get(name)
        if found is None:
            found = _counters[name] = PipelineCounter(name, documentation, labelnames)
        return found
