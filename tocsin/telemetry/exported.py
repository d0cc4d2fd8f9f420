"""Every Prometheus series name tocsin exports, from the metrics its stages declare (for checking the
dashboards and alerting rules in deploy/ against what is really there)."""

from __future__ import annotations

import importlib

STAGE_MODULES = (
    "tocsin.telemetry.metrics",
    "tocsin.pipelines.io.kafka_source",
    "tocsin.pipelines.io.kafka_sink",
    "tocsin.pipelines.io.commit",
    "tocsin.pipelines.indicators.transforms",
    "tocsin.pipelines.rules.transforms",
    "tocsin.router.service",
    "tocsin.connectors.base",
    "tocsin.connectors.intake",
)
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_series() -> set[str]:
    from prometheus_client import REGISTRY

    for module in STAGE_MODULES:
        importlib.import_module(module)
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("tocsin_"):
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names
