"""A real Prometheus (Debian's package, unpacked by `make prometheus`) scrapes a running tocsin process:
the router, with --metrics-port. Its HTTP API must then list tocsin's series. promtool checks the
scrape configuration and the alerting rules in deploy/. With the shipped health rules loaded (their
expressions as shipped, only their `for:` shortened), killing the scraped router fires its up == 0 and
absent() rules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.conftest import router_serve_args, wait_for
from tests.exported import exported_series
from tocsin.kafka.local_broker import free_port
from tocsin.organisations import token_digest

pytestmark = pytest.mark.integration
DEPLOY = Path(__file__).parents[2] / "deploy"


def binary(name: str) -> str:
    configured = os.environ.get("TOCSIN_PROMETHEUS")
    path = str(Path(configured).with_name(name)) if configured else shutil.which(name)
    if not path or not Path(path).exists():
        if os.environ.get("TOCSIN_REQUIRE_PROMETHEUS"):  # make test installs it: missing is a failure there
            pytest.fail(f"{name} not found: run `make prometheus`")
        pytest.skip(f"{name} not found: run `make prometheus`")
    return path


def test_promtool_accepts_the_scrape_config_and_the_alerting_rules():
    result = subprocess.run(
        [binary("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 18 rules found" in result.stdout + result.stderr


def _router(bootstrap, make_topic, start_pipeline, tmp_path, *metrics_flags: str):
    """`tocsin router serve` with its /metrics on a free port: (process, metrics port)."""
    topics = {name: make_topic(name) for name in ("alerts", "ledger", "notifications", "responses")}
    config = tmp_path / "routes.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "route": {"receiver": "office"},
                "receivers": [
                    {
                        "name": "office",
                        "organisation": "office",
                        "channels": [{"file": {"path": str(tmp_path / "out")}}],
                    }
                ],
                "organisations": [{"name": "office", "token_sha256": token_digest("t")}],
            }
        )
    )
    metrics_port, api_port = free_port(), free_port()
    router = start_pipeline(
        *router_serve_args(
            config, bootstrap, api_port, topics, "--metrics-port", str(metrics_port), *metrics_flags
        )
    )
    wait_for(
        lambda: _get(f"http://127.0.0.1:{metrics_port}/metrics") or not router.alive(), 60, message="metrics"
    )
    assert router.alive(), router.log_tail()
    return router, metrics_port


def _prometheus(tmp_path, config: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    server = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=open(tmp_path / "prometheus.log", "wb"),
        stderr=subprocess.STDOUT,
    )
    return server, port


def test_prometheus_scrapes_the_tocsin_series_of_a_running_router(
    bootstrap, make_topic, start_pipeline, tmp_path
):
    binary("prometheus")
    router, metrics_port = _router(bootstrap, make_topic, start_pipeline, tmp_path)
    server, port = _prometheus(
        tmp_path,
        {
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [
                {"job_name": "tocsin-router", "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}]}
            ],
        },
    )
    try:

        def series():
            body = _get(f"http://127.0.0.1:{port}/api/v1/label/__name__/values")
            return body and {n for n in json.loads(body)["data"] if n.startswith("tocsin_")}

        found = wait_for(
            lambda: (s := series()) and "tocsin_router_unacknowledged_alerts" in s and s,
            60,
            interval=1,
            message="tocsin series in Prometheus",
        )
        # Labelled series appear once they have a value; every series found is one tocsin declares.
        assert {n for n in found if not n.endswith("_created")} <= exported_series()
        up = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/query?query=up%7Bjob%3D%22tocsin-router%22%7D"))
        assert up["data"]["result"][0]["value"][1] == "1"
        assert "tocsin_build_info" in found
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_shipped_health_rules_fire_when_the_scraped_router_is_killed(
    bootstrap, make_topic, start_pipeline, tmp_path
):
    binary("prometheus")
    router, metrics_port = _router(
        bootstrap, make_topic, start_pipeline, tmp_path, "--metrics-address", "127.0.0.1"
    )
    # The shipped health rules, their expressions untouched; only `for:` shortened, to fit a test.
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    group = next(g for g in shipped["groups"] if g["name"] == "tocsin-process-health")
    rules = [dict(rule, **{"for": "2s"}) for rule in group["rules"]]
    (tmp_path / "alerts.yml").write_text(
        yaml.safe_dump({"groups": [dict(group, interval="1s", rules=rules)]})
    )
    server, port = _prometheus(
        tmp_path,
        {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(tmp_path / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": "tocsin-router",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                }
            ],
        },
    )
    try:

        def alerts() -> dict[str, str]:
            body = _get(f"http://127.0.0.1:{port}/api/v1/alerts")
            return body and {a["labels"]["alertname"]: a["state"] for a in json.loads(body)["data"]["alerts"]}

        def rules_loaded():
            body = _get(f"http://127.0.0.1:{port}/api/v1/rules")
            if not body:
                return None
            loaded = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
            return len(loaded) == len(rules) and all(
                r.get("lastEvaluation", "").startswith("2") for r in loaded
            )

        wait_for(rules_loaded, 60, interval=0.5, message="the health rules evaluated")
        wait_for(
            lambda: (u := _get(f"http://127.0.0.1:{port}/api/v1/query?query=up")) and '"1"]' in u,
            60,
            interval=0.5,
            message="the router scraped",
        )
        time.sleep(3)  # a few evaluations with the router up: the router's rules stay quiet
        quiet = alerts() or {}
        assert "TocsinRouterDown" not in quiet and "TocsinRouterMissing" not in quiet, quiet
        # the other jobs are not scraped here: their Missing rules fire, as they should
        assert wait_for(lambda: (a := alerts()) and a.get("TocsinIntakeMissing") == "firing", 30)

        router.kill()
        firing = wait_for(
            lambda: (
                (a := alerts())
                and a.get("TocsinRouterDown") == "firing"
                and a.get("TocsinRouterMissing") == "firing"
                and a
            ),
            60,
            interval=0.5,
            message="TocsinRouterDown and TocsinRouterMissing firing",
        )
        assert "TocsinRouterDown" in firing
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.read().decode()
    except OSError:
        time.sleep(0.2)
        return None
