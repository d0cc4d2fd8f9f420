"""Every Prometheus series name tocsin exports, from the metrics its modules declare (for checking the
dashboards and alerting rules in deploy/ against what is really there). Test-only: it imports every
module of the installed package, which no stage would do."""

from __future__ import annotations

import importlib
import pkgutil

from prometheus_client import REGISTRY

# The core and the stages (an editable install maps the stages' folders in, so they are walked each).
PACKAGES = ("tocsin", "tocsin.connectors", "tocsin.pipelines", "tocsin.router")
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}


def exported_series() -> set[str]:
    for name in PACKAGES:
        package = importlib.import_module(name)
        for module in pkgutil.walk_packages(package.__path__, f"{name}."):
            if not module.name.endswith("__main__"):
                importlib.import_module(module.name)
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("tocsin_"):
            names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names
