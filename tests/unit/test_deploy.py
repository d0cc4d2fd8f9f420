"""deploy/: the dashboard and the alerting rules query only series tocsin exports; the files parse; the
dashboard imports into any Grafana (its data source is a variable); every scraped job has health rules
with a runbook in the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from tests.exported import exported_series

DEPLOY = Path(__file__).parents[2] / "deploy"
README = Path(__file__).parents[2] / "README.md"
SERIES = re.compile(r"\btocsin_[a-z0-9_]+")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Series Prometheus makes itself, which a query may name beside tocsin's.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
PROMQL_WORDS |= {"bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values(...) query) selects: what is left
    once strings, label matchers, ranges, grouping labels, functions and keywords are taken out."""
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\blabel_values\(\s*([A-Za-z_:][\w:]*)\s*,[^)]*\)", r" \1 ", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        word, call = match.group(1), match.group(2)
        if not call and word.lower() not in PROMQL_WORDS:
            names.add(word)
    return names


def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "tocsin.json").read_text())


def dashboard_queries() -> list[str]:
    """Every query of the dashboard: the panels', the annotations' and the variables'."""
    board = dashboard()
    queries = dashboard_exprs()
    queries += [a["expr"] for a in board["annotations"]["list"] if "expr" in a]
    queries += [v["definition"] for v in board["templating"]["list"] if v["type"] == "query"]
    return queries


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
    assert {
        "kafka",
        "connectors",
        "intake",
        "indicators",
        "alerts",
        "router",
        "prometheus",
        "grafana",
    } <= set(compose["services"])
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


def test_the_image_serves_metrics_on_every_interface():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ENV .*\bTOCSIN_METRICS_ADDRESS=0\.0\.0\.0\b", dockerfile, re.M)


def test_the_promql_name_extraction_finds_what_a_query_selects():
    assert metric_names(
        'histogram_quantile(0.9, sum by (le, receiver) (rate(tocsin_x_bucket{receiver=~"$receiver"}[1d])))'
    ) == {"tocsin_x_bucket"}
    assert metric_names('time() - min by (job) (tocsin_w{job=~"$job"}) > 0 and on (job) up == 1') == {
        "tocsin_w",
        "up",
    }
    assert metric_names("label_values(tocsin_build_info, job)") == {"tocsin_build_info"}
    assert metric_names('ALERTS{alertstate="firing", alertname=~"Tocsin.*"}') == {"ALERTS"}


def test_every_dashboard_query_names_only_series_tocsin_or_prometheus_exports():
    exported = exported_series() | PROMETHEUS_OWN
    assert "tocsin_build_info" in exported_series()
    for query in dashboard_queries():
        names = metric_names(query)
        assert names and names <= exported, (query, names - exported)


def test_the_dashboard_imports_with_any_datasource_uid():
    text = (DEPLOY / "grafana" / "dashboards" / "tocsin.json").read_text()
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    # every panel, target, variable and annotation that queries names the variable, no uid of its own
    queried = [p for p in board["panels"] if p["type"] != "row"]
    users = queried + [t for p in queried for t in p["targets"]]
    users += [v for v in board["templating"]["list"] if v["type"] == "query"]
    users += [a for a in board["annotations"]["list"] if not a.get("builtIn")]
    assert users and all(u["datasource"] == DATASOURCE for u in users), [
        u.get("title") or u.get("name") or u.get("refId") for u in users if u["datasource"] != DATASOURCE
    ]
    # imported where the Prometheus data source has another uid: the variable resolves to it, and no
    # reference is left to the uid of the Grafana the dashboard was made in
    imported = json.loads(text.replace("${datasource}", "ops-prometheus-7"))
    uids = {
        u["datasource"]["uid"]
        for u in [p for p in imported["panels"] if p["type"] != "row"]
        + [t for p in imported["panels"] if p["type"] != "row" for t in p["targets"]]
        + [a for a in imported["annotations"]["list"] if not a.get("builtIn")]
    }
    assert uids == {"ops-prometheus-7"}
    assert '"uid": "prometheus"' not in text


def test_the_dashboard_has_country_receiver_and_job_variables_used_by_its_panels():
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    for name, series in (
        ("job", "tocsin_build_info"),
        ("country", "tocsin_signals_total"),
        ("receiver", "tocsin_router_deliveries_total"),
    ):
        assert variables[name]["type"] == "query"
        assert variables[name]["definition"] == f"label_values({series}, {name})"
        assert variables[name]["query"]["query"] == variables[name]["definition"]
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
        assert any(f'{name}=~"${name}"' in e for e in dashboard_exprs()), name


def test_every_dashboard_panel_has_a_unit_and_alerts_are_annotated():
    board = dashboard()
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["fieldConfig"]["defaults"].get("unit"), panel["title"]
    annotations = [a.get("expr", "") for a in board["annotations"]["list"]]
    assert any('ALERTS{alertstate="firing"' in e for e in annotations)
    assert any("tocsin_alerts_total" in e for e in annotations)


def _slugs(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation but - and _ dropped, spaces to -."""
    return {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in markdown.splitlines()
        if line.startswith("#")
    }


def health_rules() -> list[dict]:
    groups = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())["groups"]
    return next(g for g in groups if g["name"] == "tocsin-process-health")["rules"]


def test_every_scraped_job_has_down_and_absent_rules_with_a_runbook_in_the_readme():
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    assert jobs == {
        "tocsin-connectors",
        "tocsin-intake",
        "tocsin-indicators",
        "tocsin-alerts",
        "tocsin-router",
    }
    rules = health_rules()
    anchors = _slugs(README.read_text())
    for job in jobs:
        down = [r for r in rules if r["expr"] == f'up{{job="{job}"}} == 0']
        absent = [r for r in rules if r["expr"] == f'absent(tocsin_build_info{{job="{job}"}})']
        assert len(down) == 1 and len(absent) == 1, job
        for rule in down + absent:
            assert rule["for"] and rule["labels"]["severity"] == "critical"
            page, _, anchor = rule["annotations"]["runbook_url"].partition("#")
            assert page == "README.md" and anchor in anchors, (rule["alert"], anchor)
