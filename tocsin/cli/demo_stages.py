"""The later stages of `tocsin demo`: the Beam jobs as processes, the router in-process, a local receiver.

Kept apart from demo.py (the connectors' part) so each stage reads on its own: start a job and wait until
its output topic settles; route the alerts to a local webhook receiver that prints what it gets; answer
one alert as a responder would; read the ledger back and verify it.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import yaml
from kafka import KafkaConsumer, TopicPartition
from rich.console import Console

from tocsin.config import cache_dirs
from tocsin.kafka.local_broker import free_port
from tocsin.kafka.topics import ALERTS, LEDGER, LEDGER_CHECKPOINTS, NOTIFICATIONS, RESPONSES
from tocsin.organisations import token_digest
from tocsin.pipelines.rules.config import packaged_rules_path
from tocsin.processes import StageProcess
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import read_ledger
from tocsin.router.ledger_keys import generate, private_pem
from tocsin.router.ledger_trust import load_trust, read_checked
from tocsin.router.outbox import resolution_notices
from tocsin.router.service import Router

ESCALATE_AFTER_S = 6


def demo_trust():
    """The demo router signs its ledger as a production one does, with a key of the checkout's own
    (made on first use, kept in the cache: a demo against a cluster that keeps its ledger finds its
    earlier entries signed by the same key); the unsigned entries of demos run before signing are
    taken as they are."""
    key_file = cache_dirs()[0] / "demo" / "ledger.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.write_bytes(private_pem(generate()))
        key_file.chmod(0o600)
    return load_trust(str(key_file), None, True, LEDGER_CHECKPOINTS)


def topic_size(client: dict, topic: str) -> int:
    consumer = KafkaConsumer(enable_auto_commit=False, **client)  # no group: nothing to commit
    try:
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def wait_settled(
    client: dict, topic: str, job: StageProcess, console: Console, what: str, quiet_s=12.0, timeout_s=420.0
) -> int:
    """Wait until the job has written to `topic` and nothing new came for quiet_s; show progress."""
    start, last, since = time.monotonic(), -1, time.monotonic()
    baseline = topic_size(client, topic)
    with console.status(f"{what}: starting the job on the local streaming runner") as status:
        while time.monotonic() - start < timeout_s:
            if not job.alive():
                raise RuntimeError(f"{what} stopped; its log: {job.log_path}")
            count = topic_size(client, topic) - baseline
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= (quiet_s if count > 0 else 4 * quiet_s):
                return count  # nothing at all for long: e.g. a re-run whose alerts were all emitted before
            status.update(f"{what}: {count} records on {topic} ({time.monotonic() - start:.0f} s)")
            time.sleep(1)
    raise RuntimeError(f"{what}: no settled output on {topic} after {timeout_s:.0f} s; log: {job.log_path}")


class Receiver(ThreadingHTTPServer):
    """The demo's local webhook receiver: prints each notification as the receiving office would see it."""

    def __init__(self, console: Console):
        self.received: list[tuple[str, dict]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.received.append((self.path.strip("/"), body))
                names = sorted({a["labels"].get("country", "?") for a in body["alerts"]})
                kind = "ESCALATION" if body["groupKey"].startswith("escalation:") else body["status"]
                console.print(
                    f"  [cyan]-> {self.path.strip('/')}[/cyan] {kind}: {len(body['alerts'])} alert(s) "
                    f"{', '.join(names)}"
                )
                self.send_response(200)
                self.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def router_config(receiver_url: str, tokens: dict[str, str], external_url: str = ""):
    """The demo's routing tree: the example's receivers, webhooks to the local receiver, short timers;
    notifications link to the console at `external_url`."""

    receivers = ["au-situation-room", "igad-situation-room", "un-osapg", "civil-society-network"]
    orgs = {
        "au-situation-room": "au",
        "igad-situation-room": "igad",
        "un-osapg": "un-osapg",
        "civil-society-network": "civil-society",
    }
    return parse_router_config(
        {
            "version": 1,
            "external_url": external_url,
            "route": {
                "receiver": "un-osapg",
                "group_by": ["alertname", "country"],
                "group_wait": "1s",
                "group_interval": "3s",
                "repeat_interval": "1h",
                "routes": [
                    {
                        "matchers": ['au="true"'],
                        "receiver": "au-situation-room",
                        "escalation": "regional-un",
                        "continue": True,
                    },
                    {"matchers": ['igad="true"'], "receiver": "igad-situation-room", "continue": True},
                    {"matchers": ['severity=~"watch|warning|critical"'], "receiver": "civil-society-network"},
                ],
            },
            "escalations": {
                "regional-un": {"steps": [{"receiver": "un-osapg", "after": f"{ESCALATE_AFTER_S}s"}]}
            },
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="watch"'],
                    "equal": ["country", "alertname"],
                }
            ],
            "receivers": [
                {
                    "name": name,
                    "organisation": orgs[name],
                    "channels": [{"webhook": {"url": f"{receiver_url}/{name}"}}],
                }
                for name in receivers
            ],
            "organisations": [
                {
                    "name": org,
                    "token_sha256": token_digest(tokens[org]),
                    "admin": org == "un-osapg",
                }
                for org in sorted(set(orgs.values()))
            ],
            "retry": {"attempts": 3, "backoff": "1s"},
        }
    )


def run_router(
    client: dict, console: Console, wait: bool = False, seconds_after_alerts: float = ESCALATE_AFTER_S + 8
) -> dict:
    """Route every alert on tocsin.alerts.v1 to the local receiver, escalate, answer one; the counts.

    `wait`: then keep the router and its console up, printing their address and the organisations'
    tokens, until Enter is pressed (only on a terminal: a run whose input is not one does not wait)."""

    receiver = Receiver(console)
    tokens = {org: secrets.token_urlsafe(16) for org in ("au", "igad", "un-osapg", "civil-society")}
    topics = {
        "alerts": ALERTS,
        "ledger": LEDGER,
        "notifications": NOTIFICATIONS,
        "responses": RESPONSES,
    }
    port = free_port()  # known before the config, whose notifications link to the console on it
    config = router_config(receiver.url, tokens, f"http://127.0.0.1:{port}")
    router = Router(config, client, topics, ledger=demo_trust())
    router.start()
    api = RouterAPI(router, port=port).start()
    stop = threading.Event()
    loop = threading.Thread(target=router.run, args=(stop,), daemon=True)
    loop.start()
    answered = None
    try:
        deadline = time.monotonic() + seconds_after_alerts
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if answered is None:
                answered = _answer_one(router, api.url, tokens["un-osapg"], console)
        time.sleep(2)
        if wait and sys.stdin.isatty():
            _console_open(api.url, tokens, console)
    finally:
        stop.set()
        loop.join(timeout=30)
        api.stop()
        router.close()
        receiver.shutdown()
    ledger = _ledger(client)
    entries = [e.kind for e in ledger]
    return {
        "deliveries": sum(1 for k in entries if k == "notification"),
        "resolutions": resolution_notices(ledger),
        "escalations": entries.count("escalation"),
        "answers": entries.count("response"),
        "notified": len(receiver.received),
        "answered": answered,
    }


def _console_open(url: str, tokens: dict[str, str], console: Console) -> None:
    console.rule("the console")
    console.print(f"Open [bold]{url}/[/bold] and sign in with an organisation's token:")
    for org, token in sorted(tokens.items()):
        console.print(f"  {org:<14} {token}", highlight=False)
    console.print("The router keeps routing and escalating meanwhile; answers land in the ledger.")
    try:
        input("Press Enter to stop the console and finish the demo... ")
    except EOFError:
        pass


def _answer_one(router, api_url: str, token: str, console: Console) -> str | None:
    """As the UN office: acknowledge the first alert escalated to it (nobody at the first level answered)."""

    with router.lock:
        escalated = [a for a, e in router.state.escalations.items() if e.level >= 1 and not e.done]
    if not escalated:
        return None
    alert_id = sorted(escalated)[0]
    body = json.dumps({"kind": "acknowledged", "responder": "UN duty officer (demo)"}).encode()
    request = urllib.request.Request(
        f"{api_url}/v1/alerts/{quote(alert_id, safe='')}/responses",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        console.print(f"  [green]acknowledged[/green] {alert_id} as the UN office (through the API)")
    return alert_id


def _ledger(client: dict):
    return read_ledger(client, LEDGER)


def ledger_verified(client: dict) -> tuple[int, list[str]]:
    """The entries that verify (signed by the demo's key, chained, the checkpoints held), and the
    problems of any other record."""
    verdict = read_checked(client, LEDGER, demo_trust())
    return len(verdict.trusted), verdict.problems


# One hour of GDELT (the bundled excerpt) is far below what the packaged weekly rules need; the demo adds
# one rule scaled to it, so that the replay's most recent events raise an alert that is still firing.
DEMO_RULE = {
    "id": "demo-armed-conflict-reports",
    "description": "Demo only: distinct armed-conflict events in a week from at least five publishers, "
    "with thresholds scaled to the one hour of GDELT bundled with tocsin.",
    "kind": "threshold",
    "indicator": "rf1.armed_conflict",
    "window": "7d/1d",
    "levels": {"watch": 10, "warning": 25, "critical": 60},
    "min_sources": 5,
}


def demo_rules(directory: Path) -> Path:
    document = yaml.safe_load(packaged_rules_path().read_text(encoding="utf-8"))
    document["rules"].append(DEMO_RULE)
    path = directory / "demo-rules.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def job_args(bootstrap: str, group: str) -> list[str]:
    return [
        "--bootstrap-servers",
        bootstrap,
        "--group-id",
        f"{group}-{uuid.uuid4().hex[:6]}",
        "--start",
        "earliest",
        "--max-out-of-orderness",
        "1500000000s",  # the replay mixes 1989 and 2020: hold the watermark
        "--close-when-idle",
        "--idle-timeout",
        "3s",
    ]
