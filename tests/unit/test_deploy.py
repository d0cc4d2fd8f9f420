"""deploy/: the dashboard and the alerting rules query only series tocsin exports; the files parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.exported import exported_series

DEPLOY = Path(__file__).parents[2] / "deploy"
SERIES = re.compile(r"\btocsin_[a-z0-9_]+")


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "tocsin.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r["expr"] for g in rules["groups"] for r in g["rules"]]


def test_the_dashboard_queries_only_metrics_tocsin_exports():
    exprs = dashboard_exprs()
    used = {name for e in exprs for name in SERIES.findall(e)}
    assert used and used <= exported_series(), used - exported_series()
    # and it has the panels operators asked for
    titles = " ".join(
        p["title"] for p in json.loads((DEPLOY / "grafana/dashboards/tocsin.json").read_text())["panels"]
    )
    for words in (
        "Records per source",
        "Signals per country",
        "Signals per risk factor",
        "Alerts fired by severity",
        "Time to acknowledge",
        "unanswered",
        "Throughput",
        "Consumer lag",
    ):
        assert words in titles


def test_the_alerting_rules_query_only_metrics_tocsin_exports():
    used = {name for e in rule_exprs() for name in SERIES.findall(e)}
    assert used <= exported_series(), used - exported_series()
    names = {
        r["alert"]
        for g in yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert {
        "TocsinConsumerLag",
        "TocsinDeadLetterRate",
        "TocsinNoDataFromSource",
        "TocsinAlertsUnacknowledged",
    } <= names


def test_a_query_naming_a_metric_tocsin_does_not_export_would_be_caught():
    assert "tocsin_router_time_to_acknowledge_seconds_bucket" in exported_series()
    assert "tocsin_router_time_to_acknowledge_seconds" not in exported_series()  # a histogram's own name
    assert "tocsin_alerts_total" in exported_series() and "tocsin_alerts" not in exported_series()


def test_compose_and_provisioning_files_are_consistent():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert {"kafka", "indicators", "alerts", "router", "prometheus", "grafana"} <= set(compose["services"])
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    ports = {
        t.split(":")[1]
        for job in scrape["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    commands = " ".join(" ".join(s.get("command", [])) for s in compose["services"].values())
    assert ports <= set(re.findall(r"--metrics-port (\d+)", commands))
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/tocsin.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
