"""Prometheus metrics shared by every stage, and the /metrics endpoint long-running commands start.

Names follow Prometheus conventions: `tocsin_<stage>_<what>_total` for counters, `_seconds` for
durations. Each stage declares its own metrics in its module with `counter()` / `histogram()` here, so a
module imported twice (Beam workers re-import) never registers a metric twice.
"""

from __future__ import annotations

import importlib.metadata
import platform
import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_lock = threading.Lock()
_metrics: dict[str, object] = {}


def _get(kind, name: str, documentation: str, labelnames=(), registry: CollectorRegistry = REGISTRY, **kw):
    with _lock:
        metric = _metrics.get(name)
        if metric is None:
            metric = kind(name, documentation, labelnames=labelnames, registry=registry, **kw)
            _metrics[name] = metric
        return metric


def counter(name: str, documentation: str, labelnames=()) -> Counter:
    return _get(Counter, name, documentation, labelnames)


def gauge(name: str, documentation: str, labelnames=()) -> Gauge:
    return _get(Gauge, name, documentation, labelnames)


def histogram(name: str, documentation: str, labelnames=(), buckets=Histogram.DEFAULT_BUCKETS) -> Histogram:
    return _get(Histogram, name, documentation, labelnames, buckets=buckets)


# Where /metrics listens: loopback unless told (`--metrics-address`, or this variable, which tocsin's
# container image sets to 0.0.0.0 so that Prometheus in another container can scrape it).
METRICS_ADDRESS_ENV = "TOCSIN_METRICS_ADDRESS"
DEFAULT_METRICS_ADDRESS = "127.0.0.1"

BUILD_INFO = gauge(
    "tocsin_build_info",
    "Always 1; its labels are the versions of tocsin, Python and the libraries this process runs",
    ["version", "python", "beam", "kafka_python", "prometheus_client"],
)


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def build_info() -> dict[str, str]:
    """The labels of tocsin_build_info (read from the installed distributions, not by importing them)."""
    return {
        "version": _version("tocsin"),
        "python": platform.python_version(),
        "beam": _version("apache-beam"),
        "kafka_python": _version("kafka-python"),
        "prometheus_client": _version("prometheus-client"),
    }


def serve_metrics(port: int | None, addr: str = DEFAULT_METRICS_ADDRESS) -> int | None:
    """Start the /metrics HTTP endpoint on `addr`:`port` (0 picks a free one); return the bound port.
    OSError when the address cannot be bound (taken, not this machine's, not resolvable)."""
    if port is None:
        return None
    BUILD_INFO.labels(**build_info()).set(1)
    server, _thread = start_http_server(port, addr=addr)
    return server.server_address[1]


# Metrics of the Kafka layer, used by the serde, the clients and the Beam I/O transforms.
RECORDS_PRODUCED = counter("tocsin_kafka_records_produced_total", "Records acknowledged by Kafka", ["topic"])
RECORDS_CONSUMED = counter("tocsin_kafka_records_consumed_total", "Records read from Kafka", ["topic"])
DEAD_LETTERS = counter(
    "tocsin_dead_letters_total", "Records sent to the dead-letter topic", ["stage", "reason"]
)
OFFSETS_COMMITTED = counter(
    "tocsin_kafka_offset_commits_total", "Offset commits made once output was durable", ["topic"]
)
