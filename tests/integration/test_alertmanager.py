"""tocsin speaks Alertmanager's language both ways, against the real thing (`make alertmanager` builds
amtool and alertmanager from the Go module proxy into .cache).

amtool, pointed at the router with an organisation's token (its --http.config.file), lists the alerts
routed to that organisation and not another's, and an admin organisation adds a silence, finds it, and
expires it, each change an entry of tocsin's ledger. A real Alertmanager fed by the `alertmanager`
channel shows a tocsin alert firing (through its own API), still firing after its first endsAt has
passed (the re-sends keep it alive), and ended as soon as tocsin resolves it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tocsin.kafka.local_broker import free_port
from tocsin.organisations import token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import read_ledger
from tocsin.router.service import Router

pytestmark = pytest.mark.integration
TOKENS = {"igad": "igad-token", "un": "un-token"}
ETH = "threshold:ETH/Tigray:2024-01-07"
SDN = "threshold:SDN:2024-01-07"
RESEND_S = 2  # the channel's re-send interval: Alertmanager's endsAt is 4 of them (8 s) ahead


def binary(name: str) -> str:
    configured = os.environ.get(f"TOCSIN_{name.upper()}")
    path = configured or shutil.which(name)
    if not path or not Path(path).exists():
        if os.environ.get("TOCSIN_REQUIRE_ALERTMANAGER"):  # make test builds them: missing is a failure
            pytest.fail(f"{name} not found: run `make alertmanager`")
        pytest.skip(f"{name} not found: run `make alertmanager`")
    return path


def alert(alert_id: str, country: str, status: str = "FIRING", sequence: int = 1) -> dict:
    now_ms = int(time.time() * 1000)
    return {
        "id": alert_id, "sequence": sequence, "rule_id": "threshold", "rule_version": "v1", "status": status,
        "severity": "WARNING", "country": country, "region": None, "risk_factors": [1],
        "indicator_ids": ["rf1.armed_conflict"], "window_start": 0, "window_end": 1,
        "evidence": [{"record_id": "acled:1", "url": "https://example.org/report/1", "title": "report"}],
        "values": [{"name": "deaths", "value": 5.0, "threshold": 3.0, "comparator": ">="}],
        "distinct_sources": 2, "summary": f"deaths in {country}", "first_fired": now_ms - 60_000,
        "last_updated": now_ms,
        "labels": {"alertname": "threshold", "country": country, "severity": "warning"},
    }  # fmt: skip


@pytest.fixture
def running_router(bootstrap, make_topic, tmp_path):
    """A router on the real broker, its API served and its loop running: start(un_channels) -> (api,
    router). The ETH alert goes to IGAD's receiver, every other to the UN's."""
    started = []

    def start(un_channels: list[dict]):
        topics = {k: make_topic(k) for k in ("alerts", "ledger", "notifications", "responses")}
        config = parse_router_config(
            {
                "version": 1,
                "external_url": "https://tocsin.example.org",
                "route": {
                    "receiver": "un-room",
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "routes": [{"matchers": ['country="ETH"'], "receiver": "igad-room"}],
                },
                "receivers": [
                    {
                        "name": "igad-room",
                        "organisation": "igad",
                        "channels": [{"file": {"path": str(tmp_path / "igad")}}],
                    },
                    {"name": "un-room", "organisation": "un", "channels": un_channels},
                ],
                "organisations": [
                    {"name": "igad", "token_sha256": token_digest(TOKENS["igad"])},
                    {"name": "un", "token_sha256": token_digest(TOKENS["un"]), "admin": True},
                ],
            }
        )
        router = Router(config, {"bootstrap_servers": [bootstrap]}, topics)
        router.start()
        api = RouterAPI(router).start()
        stop = threading.Event()
        thread = threading.Thread(target=router.run, args=(stop,), daemon=True)
        thread.start()
        started.append((api, router, stop, thread))
        return api, router

    yield start
    for api, router, stop, thread in started:
        stop.set()
        thread.join(10)
        api.stop()
        router.close()


def amtool(api, who: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """The real amtool at the router, with the organisation's token as a bearer (its HTTP config file)."""
    config = tmp_path / f"amtool-{who}.yml"
    config.write_text(f"authorization:\n  type: Bearer\n  credentials: {TOKENS[who]}\n")
    command = [binary("amtool"), f"--alertmanager.url={api.url}", f"--http.config.file={config}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def amtool_json(api, who: str, tmp_path: Path, *args: str):
    result = amtool(api, who, tmp_path, *args, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_amtool_reads_an_organisations_alerts_and_manages_silences_each_change_in_the_ledger(
    running_router, tmp_path
):
    api, router = running_router([{"file": {"path": str(tmp_path / "un")}}])
    with router.lock:
        router.receive(alert(ETH, "ETH"), 0, 0)
        router.receive(alert(SDN, "SDN"), 0, 1)

    # Each organisation sees the alerts routed to it, and not the other's.
    [seen] = amtool_json(api, "igad", tmp_path, "alert", "query")
    assert seen["labels"] == {"alertname": "threshold", "country": "ETH", "severity": "warning"}
    assert seen["receivers"] == [{"name": "igad-room"}]
    assert seen["annotations"]["alert_id"] == ETH
    assert seen["annotations"]["escalation_level"] == "0"
    assert seen["generatorURL"] == "https://tocsin.example.org/alerts/threshold%3AETH%2FTigray%3A2024-01-07"
    assert [a["annotations"]["alert_id"] for a in amtool_json(api, "un", tmp_path, "alert", "query")] == [SDN]
    # A matcher filter, as amtool sends it (its first bare word is an alertname).
    assert amtool_json(api, "un", tmp_path, "alert", "query", 'country=~"E.*"') == []
    assert len(amtool_json(api, "un", tmp_path, "alert", "query", "threshold", "country=SDN")) == 1

    # Silences need an admin organisation (a status amtool does not expect: it prints no body).
    refused = amtool(api, "igad", tmp_path, "silence", "add", "country=SDN", "-c", "x", "-a", "amina")
    assert refused.returncode != 0
    assert "postSilences (status 403)" in refused.stderr

    added = amtool(api, "un", tmp_path, "silence", "add", "country=SDN", "--comment=talks", "--author=jo")
    assert added.returncode == 0, added.stdout + added.stderr
    silence_id = added.stdout.strip()
    [listed] = amtool_json(api, "un", tmp_path, "silence", "query")
    assert listed["id"] == silence_id and listed["status"]["state"] == "active"
    assert listed["matchers"] == [{"name": "country", "value": "SDN", "isRegex": False, "isEqual": True}]
    assert listed["createdBy"] == "jo" and listed["comment"] == "talks"
    # The silenced alert is no longer active: amtool lists it only with --silenced.
    assert amtool_json(api, "un", tmp_path, "alert", "query") == []
    [muted] = amtool_json(api, "un", tmp_path, "alert", "query", "--silenced")
    assert muted["status"] == {
        "state": "suppressed",
        "silencedBy": [silence_id],
        "inhibitedBy": [],
        "mutedBy": [],
    }

    expired = amtool(api, "un", tmp_path, "silence", "expire", silence_id)
    assert expired.returncode == 0, expired.stdout + expired.stderr
    assert amtool_json(api, "un", tmp_path, "silence", "query") == []
    [gone] = amtool_json(api, "un", tmp_path, "silence", "query", "--expired")
    assert gone["id"] == silence_id and gone["status"]["state"] == "expired"
    assert len(amtool_json(api, "un", tmp_path, "alert", "query")) == 1  # active again

    # Every change is in the ledger, by whom it was made.
    entries = read_ledger(router.client, router.topics["ledger"])
    changes = [(e.kind, e.subject_id, e.actor) for e in entries if e.kind.startswith("silence.")]
    assert changes == [
        ("silence.created", silence_id, "un/jo"),
        ("silence.expired", silence_id, "un/alertmanager-api"),
    ]
    [created] = [e for e in entries if e.kind == "silence.created"]
    assert created.payload["silence"]["matchers"] == ['country="SDN"']
    assert created.payload["silence"]["reason"] == "talks"
    routed = {e.subject_id: e.payload["routes"][0]["receiver"] for e in entries if e.kind == "alert.routed"}
    assert routed == {ETH: "igad-room", SDN: "un-room"}  # what each organisation was shown


def alertmanager_api(port: int, path: str):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2{path}", timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def alertmanager(tmp_path):
    """A real Alertmanager on a free port, one receiver that sends nowhere: its API is what is read."""
    config = tmp_path / "alertmanager.yml"
    config.write_text("route:\n  receiver: nowhere\n  group_wait: 1s\nreceivers:\n  - name: nowhere\n")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        [
            binary("alertmanager"),
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # one instance: no gossip port
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def ready():
        assert process.poll() is None, (tmp_path / "alertmanager.log").read_text()
        try:
            return alertmanager_api(port, "/status")
        except OSError:
            return None

    wait_for(ready, 30, message="alertmanager to answer")
    yield port
    process.terminate()
    process.wait(10)
    log.close()


def test_an_existing_alertmanager_receives_a_tocsin_alert_keeps_it_firing_and_sees_it_resolved(
    running_router, alertmanager
):
    channel = {"alertmanager": {"url": f"http://127.0.0.1:{alertmanager}", "resend": f"{RESEND_S}s"}}
    api, router = running_router([channel])
    with router.lock:
        router.receive(alert(SDN, "SDN"), 0, 0)

    def firing():
        return [a for a in alertmanager_api(alertmanager, "/alerts") if a["labels"].get("country") == "SDN"]

    [received] = wait_for(firing, 20, message="the alert in Alertmanager")
    pushed_at = time.time()
    assert received["labels"] == {"alertname": "threshold", "country": "SDN", "severity": "warning"}
    assert received["status"]["state"] == "active"
    assert received["annotations"]["summary"] == "deaths in SDN"
    assert received["annotations"]["alert_id"] == SDN
    assert received["annotations"]["evidence"] == "https://example.org/report/1"
    assert received["generatorURL"] == "https://tocsin.example.org/alerts/threshold%3ASDN%3A2024-01-07"
    # The delivery is a notification like any other: in the ledger, delivered.
    wait_for(
        lambda: any(
            e.kind == "notification"
            and e.payload["channel"] == "alertmanager"
            and e.payload["status"] == "DELIVERED"
            for e in read_ledger(router.client, router.topics["ledger"])
        ),
        20,
        message="the notification's ledger entry",
    )

    # Past the endsAt the first push carried (4 re-send intervals), the re-sends have kept it firing.
    time.sleep(max(0.0, pushed_at + 4 * RESEND_S + 2 - time.time()))
    still = firing()
    assert [a["status"]["state"] for a in still] == ["active"], "Alertmanager let the alert end"

    resolved = alert(SDN, "SDN", status="RESOLVED", sequence=2)
    with router.lock:
        router.receive(resolved, 0, 1)
    resolved_at = time.time()
    # Ended by tocsin's resolution (endsAt = when it resolved), well before a last re-send's endsAt.
    wait_for(lambda: firing() == [], 2 * RESEND_S, message="Alertmanager to see the alert resolved")
    assert time.time() - resolved_at < 4 * RESEND_S
