"""The response router end to end: the real broker, a local webhook server and a local SMTP server.

An alert fires; the regional receiver (French) gets one grouped notification by webhook, by e-mail and
by chat (apprise, to a local JSON webhook); nobody acknowledges, so the escalation reaches the next level
(English, by webhook and e-mail) after the (short) deadline; an acknowledgement through the API stops it;
`tocsin ledger show` tells that story and `verify` passes. Then the router is killed while a deadline is
pending and restarted: the escalation still happens, once. The webhook payloads are checked against
Alertmanager's documented webhook format; every notification links to the alert's page in the console
(external_url) and gives the real `tocsin router ack|decide` commands, in its receiver's language.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import json
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import quote

import pytest
import yaml
from aiosmtpd.controller import Controller
from kafka import KafkaProducer
from pydantic import BaseModel, ConfigDict
from typer.testing import CliRunner

from tests.conftest import router_serve_args, wait_for
from tocsin.cli import app
from tocsin.kafka.local_broker import free_port
from tocsin.organisations import token_digest
from tocsin.serde.avro import default_registry, encode

pytestmark = pytest.mark.integration

DEADLINE_S = 4


# Alertmanager's webhook payload as documented:
# prometheus.io/docs/alerting/latest/configuration/#webhook_config
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)


class AlertmanagerAlert(_Strict):
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    startsAt: dt.datetime  # noqa: N815 (the documented field names)
    endsAt: dt.datetime  # noqa: N815
    generatorURL: str  # noqa: N815
    fingerprint: str


class AlertmanagerWebhook(_Strict):
    version: Literal["4"]
    groupKey: str  # noqa: N815
    truncatedAlerts: int  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str]  # noqa: N815
    commonLabels: dict[str, str]  # noqa: N815
    commonAnnotations: dict[str, str]  # noqa: N815
    externalURL: str  # noqa: N815
    alerts: list[AlertmanagerAlert]


class Webhooks(ThreadingHTTPServer):
    def __init__(self):
        self.received: list[tuple[str, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):  # noqa: N802, N805
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.received.append((handler.path, body))
                handler.send_response(200)
                handler.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def at(self, path: str) -> list[dict]:
        return [body for p, body in self.received if p == path]


class Mailbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def servers():
    webhooks, mailbox = Webhooks(), Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    yield webhooks, mailbox, smtp.port
    smtp.stop()
    webhooks.shutdown()


def router_config(path, webhook_port: int, smtp_port: int, tokens: dict, external_url: str) -> None:
    hook = f"http://127.0.0.1:{webhook_port}"
    smtp = {"from": "tocsin@example.org", "smtp_host": "127.0.0.1", "smtp_port": smtp_port}
    path.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "external_url": external_url,
                "route": {
                    "receiver": "un-osapg",
                    "group_by": ["alertname", "country"],
                    "group_wait": "1s",
                    "group_interval": "2s",
                    "repeat_interval": "1h",
                    "routes": [
                        {
                            "matchers": ['igad="true"'],
                            "receiver": "igad-situation-room",
                            "escalation": "regional-un",
                        }
                    ],
                },
                "escalations": {
                    "regional-un": {
                        "steps": [{"receiver": "un-osapg", "after": f"{DEADLINE_S}s"}],
                        "repeat": f"{DEADLINE_S}s",
                    }
                },
                "receivers": [
                    {
                        "name": "igad-situation-room",
                        "organisation": "igad",
                        "language": "fr",
                        "channels": [
                            {"webhook": {"url": f"{hook}/igad"}},
                            {"email": {"to": ["cewarn@example.org"], **smtp}},
                            {"chat": {"url": f"json://127.0.0.1:{webhook_port}/igad-chat"}},
                        ],
                    },
                    {
                        "name": "un-osapg",
                        "organisation": "un",
                        "channels": [
                            {"webhook": {"url": f"{hook}/un"}},
                            {"email": {"to": ["osapg@example.org"], **smtp}},
                        ],
                    },
                ],
                "organisations": [
                    {"name": name, "token_sha256": token_digest(token)} for name, token in tokens.items()
                ],
                "retry": {"attempts": 3, "backoff": "1s"},
            }
        )
    )


def an_alert(alert_id: str, country: str) -> dict:
    now = int(time.time() * 1000)
    return {
        "id": alert_id,
        "sequence": 1,
        "rule_id": "attacks-on-civilians",
        "rule_version": "0123456789ab",
        "status": "FIRING",
        "severity": "CRITICAL",
        "country": country,
        "region": None,
        "risk_factors": [11],
        "indicator_ids": ["rf11.attack_on_civilians"],
        "values": [
            {"name": "rf11.attack_on_civilians count", "value": 41.0, "threshold": 40.0, "comparator": ">="}
        ],
        "window_start": now - 86_400_000,
        "window_end": now,
        "evidence": [
            {
                "record_id": "gdelt2:1",
                "title": "Village attacked",
                "url": "https://example.org/1",
                "source": "example.org",
            }
        ],
        "distinct_sources": 5,
        "summary": f"attacks-on-civilians fired for {country}",
        "first_fired": now,
        "last_updated": now,
        "labels": {
            "alertname": "attacks-on-civilians",
            "country": country,
            "severity": "critical",
            "igad": "true",
        },
    }


def answer(api: str, token: str, alert_id: str, body: dict) -> int:
    request = urllib.request.Request(
        f"{api}/v1/alerts/{alert_id}/responses",
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout  # logs (e.g. a slow kafka-python loop warning) go to stderr


def test_deliver_escalate_acknowledge_ledger_and_restart(
    bootstrap, make_topic, start_pipeline, servers, tmp_path
):
    webhooks, mailbox, smtp_port = servers
    topics = {
        name: make_topic(name, 3 if name == "alerts" else 1)
        for name in ("alerts", "ledger", "notifications", "responses")
    }
    tokens = {"igad": "igad-secret", "un": "un-secret"}
    config = tmp_path / "routes.yaml"
    port = free_port()
    api = f"http://127.0.0.1:{port}"  # the console and the API: the router's external_url
    router_config(config, webhooks.server_address[1], smtp_port, tokens, external_url=api)
    # The router signs its ledger, as in production: a key made as an operator makes it (keygen), and
    # the trusted keys file `ledger verify` is given below.
    checkpoints = make_topic("checkpoints")
    key_file, trusted = tmp_path / "router.key", tmp_path / "trusted-keys.yaml"
    cli("ledger", "keygen", str(key_file), "--trusted-keys", str(trusted))
    verify = ("ledger", "verify", "-b", bootstrap, "--trusted-keys", str(trusted))
    verify += ("--topic", topics["ledger"], "--checkpoints-topic", checkpoints)
    args = router_serve_args(
        config, bootstrap, port, topics, f"--ledger-key={key_file}", f"--checkpoints-topic={checkpoints}"
    )
    router = start_pipeline(*args)
    wait_for(lambda: _healthy(api) or not router.alive(), 60, message="router API")
    assert router.alive(), router.log_tail()

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    first = "attacks-on-civilians:SDN:2026-11-26T00:00Z"
    producer.send(
        topics["alerts"],
        key=first.encode(),
        value=encode(default_registry().get("Alert"), an_alert(first, "SDN")),
    )
    producer.flush()

    # One grouped notification to the regional receiver, by webhook, e-mail and chat, in French, each
    # with the alert's page in the console and the commands that answer it.
    wait_for(
        lambda: webhooks.at("/igad") and mailbox.messages and webhooks.at("/igad-chat"),
        30,
        message="regional notifications",
    )
    link = f"{api}/alerts/{quote(first, safe='')}"
    ack_fr = f"tocsin router ack {first} -r NOM --url {api}"
    decide_fr = f"tocsin router decide {first} -r NOM --action-taken TEXTE --url {api}"
    [payload] = webhooks.at("/igad")
    AlertmanagerWebhook.model_validate(payload)  # a consumer of Alertmanager's documented format accepts it
    assert payload["groupLabels"] == {"alertname": "attacks-on-civilians", "country": "SDN"}
    assert [a["annotations"]["alert_id"] for a in payload["alerts"]] == [first]
    assert payload["externalURL"] == api and payload["alerts"][0]["generatorURL"] == link
    assert payload["alerts"][0]["annotations"]["description"] == (
        f"Console : {link}\nPrendre en charge : {ack_fr}\nDécider : {decide_fr}"
    )
    [(recipients, raw)] = mailbox.messages
    mail = email.message_from_string(raw, policy=email.policy.default)
    assert recipients == ["cewarn@example.org"] and mail["Content-Language"] == "fr"
    assert (
        mail["Subject"]
        == "[TOCSIN] EN COURS CRITIQUE : 1 alerte (alertname=attacks-on-civilians, country=SDN)"
    )
    body = mail.get_content().splitlines()
    assert body[0] == f"Pour igad-situation-room : 1 alerte, groupe {payload['groupKey']}."
    assert f"  Console : {link}" in body
    assert f"  Prendre en charge : {ack_fr}" in body and f"  Décider : {decide_fr}" in body
    assert f"Toutes les alertes de votre organisation : {api}/" in body
    assert "tocsin ack" not in _text(raw) and "tocsin decide" not in _text(raw)  # commands that do not exist
    [chat] = webhooks.at("/igad-chat")
    assert chat["title"] == mail["Subject"]
    assert f"  Console : {link}" in chat["message"].splitlines()
    assert f"  Prendre en charge : {ack_fr}" in chat["message"].splitlines()
    assert webhooks.at("/un") == []

    # Nobody acknowledges: after the deadline, the next level.
    escalated = wait_for(
        lambda: len(mailbox.messages) == 2 and webhooks.at("/un"), DEADLINE_S + 20, message="escalation"
    )
    AlertmanagerWebhook.model_validate(escalated[0])
    assert escalated[0]["groupKey"] == f"escalation:{first}:1"
    assert escalated[0]["alerts"][0]["generatorURL"] == link
    # The next level reads English.
    recipients, raw = mailbox.messages[1]
    mail = email.message_from_string(raw, policy=email.policy.default)
    assert recipients == ["osapg@example.org"] and mail["Content-Language"] == "en"
    assert mail["Subject"] == f"[TOCSIN ESCALATION] FIRING CRITICAL: 1 alert (alert_id={first})"
    body = mail.get_content().splitlines()
    assert "Escalated (level 1): nobody acknowledged in time." in body
    assert f"  Console: {link}" in body
    assert f"  Acknowledge: tocsin router ack {first} -r NAME --url {api}" in body
    assert f"  Decide: tocsin router decide {first} -r NAME --action-taken TEXT --url {api}" in body
    assert answer(api, tokens["igad"], "no-such-alert", {"kind": "acknowledged", "responder": "x"}) == 404
    assert answer(api, "wrong", first, {"kind": "acknowledged", "responder": "x"}) == 401
    assert answer(api, tokens["un"], first, {"kind": "acknowledged", "responder": "Duty officer"}) == 201
    time.sleep(DEADLINE_S + 2)  # the repeat would have come by now
    assert len(webhooks.at("/un")) == 1
    # The same answers from the CLI: a comment, then a decision, each with the organisation's token.
    cli(
        "router",
        "comment",
        first,
        "Convoy route closed",
        "-r",
        "Analyst",
        "--url",
        api,
        "--token",
        tokens["igad"],
    )
    cli(
        "router",
        "decide",
        first,
        "-r",
        "Duty officer",
        "--action-taken",
        "Envoy briefed",
        "--url",
        api,
        "--token",
        tokens["un"],
    )
    refused = CliRunner().invoke(
        app, ["router", "decide", first, "-r", "x", "--declined", "no", "--url", api, "--token", "wrong"]
    )
    assert refused.exit_code == 1 and "error: authorization: unknown token" in refused.stderr

    story = cli("ledger", "show", first, "-b", bootstrap, "--topic", topics["ledger"])
    kinds = [line.split()[3] for line in story.splitlines()]
    assert kinds == [
        "alert.received",
        "alert.routed",
        "notification",
        "notification",
        "notification",
        "escalation",
        "notification",
        "notification",
        "response",
        "comment",
        "response",
    ]
    assert "igad-situation-room by webhook, attempt 1: DELIVERED" in story
    assert "igad-situation-room by email, attempt 1: DELIVERED" in story
    assert "igad-situation-room by chat, attempt 1: DELIVERED" in story
    assert "un-osapg by email, attempt 1: DELIVERED" in story
    assert "not acknowledged: level 1 -> un-osapg" in story
    assert "un/Duty officer" in story and "ACKNOWLEDGED" in story
    assert "igad/Analyst" in story and "COMMENT: Convoy route closed" in story
    assert "ACTION_TAKEN: Envoy briefed" in story
    assert cli(*verify).startswith("ledger verified:")

    # Kill the router while a deadline is pending, restart it: the escalation happens, once.
    second = "attacks-on-civilians:ETH:2026-11-26T00:00Z"
    producer.send(
        topics["alerts"],
        key=second.encode(),
        value=encode(default_registry().get("Alert"), an_alert(second, "ETH")),
    )
    producer.flush()
    # Every channel of it delivered, then the kill: a deadline is pending, no delivery is under way.
    wait_for(
        lambda: (
            any(second in json.dumps(b) for b in webhooks.at("/igad"))
            and any(second in json.dumps(b) for b in webhooks.at("/igad-chat"))
            and any(second in _text(m) for _, m in mailbox.messages)
        ),
        30,
        message="second notification",
    )
    router.kill()
    restarted = start_pipeline(*args)
    escalations = wait_for(
        lambda: (
            [b for b in webhooks.at("/un") if b["groupKey"] == f"escalation:{second}:1"]
            or not restarted.alive()
        ),
        DEADLINE_S + 40,
        message="escalation after restart",
    )
    assert restarted.alive(), restarted.log_tail()
    assert (
        answer(
            api,
            tokens["un"],
            second,
            {"kind": "action_taken", "responder": "Duty officer", "description": "Envoy briefed"},
        )
        == 201
    )
    time.sleep(3)
    assert (
        len([b for b in webhooks.at("/un") if b["groupKey"] == f"escalation:{second}:1"])
        == 1
        == len(escalations)
    )
    assert sum(1 for b in webhooks.at("/igad") if second in json.dumps(b)) == 1  # not re-notified on restart
    story = cli("ledger", "show", second, "-b", bootstrap, "--topic", topics["ledger"])
    assert [line.split()[3] for line in story.splitlines()].count("alert.received") == 1
    assert [line.split()[3] for line in story.splitlines()].count("escalation") == 1
    assert cli(*verify).startswith("ledger verified:")


def _text(raw: str) -> str:
    """A received e-mail's subject and body, decoded (quoted-printable, RFC 2047)."""
    mail = email.message_from_string(raw, policy=email.policy.default)
    return f"{mail['Subject']}\n{mail.get_content()}"


def _healthy(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False
