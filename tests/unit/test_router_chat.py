"""The chat channel (apprise) against a real local HTTP server: what arrives (the console link, the
receiver's language), apprise's generic JSON webhook and a Mattermost-style URL; the retry layer's rules
(a 500 then a 200 is retried, a 4xx is final, a refused connection is retried); a token in the URL never
reaches a log line, an attempt's detail or an error."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tocsin.kafka.local_broker import free_port
from tocsin.router.config import Chat, parse_router_config
from tocsin.router.notify import Outcome, notifier_for
from tocsin.router.notify.chat import REDACTED, ChatNotifier, redact, url_problem
from tocsin.router.notify.payload import Audience, Message
from tocsin.router.notify.retry import is_final

ID = "rule:ETH/Tigray:2027-01-15T08:00Z"
LINK = "https://tocsin.example.org/alerts/rule%3AETH%2FTigray%3A2027-01-15T08%3A00Z"
TOKEN = "k9w3xq7n5pz1tq8mfyr4ob2hsa"  # a Mattermost incoming-webhook key
T = 1_800_000_000_000


class ChatServer(ThreadingHTTPServer):
    """Records each request (path, JSON body) and answers with the next of `codes` (then 200)."""

    def __init__(self, codes=()):
        self.codes = list(codes)
        self.received: list[tuple[str, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):  # noqa: N802, N805
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.received.append((handler.path, body))
                handler.send_response(self.codes.pop(0) if self.codes else 200)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]


@pytest.fixture
def server():
    servers = []

    def start(*codes):
        servers.append(ChatServer(codes))
        return servers[-1]

    yield start
    for s in servers:
        s.shutdown()


def a_message(level=0, **changes) -> Message:
    alert = {
        "id": ID,
        "sequence": 1,
        "rule_id": "attacks-on-civilians",
        "rule_version": "0123456789ab",
        "status": "FIRING",
        "severity": "CRITICAL",
        "country": "ETH",
        "region": "Tigray",
        "summary": "attacks-on-civilians fired for ETH/Tigray",
        "values": [{"name": "count", "value": 41.0, "threshold": 40.0, "comparator": ">="}],
        "evidence": [{"record_id": "gdelt2:1", "title": "Village attacked", "url": "https://example.org/1"}],
        "labels": {"alertname": "attacks-on-civilians", "country": "ETH"},
        "window_start": T,
        "window_end": T,
        "first_fired": T,
        "last_updated": T,
        **changes,
    }
    return Message("field-officers", "root.0:{}", {"country": "ETH"}, [alert], level)


CHAT_FR = f"""\
EN COURS CRITIQUE  {ID}
  attacks-on-civilians fired for ETH/Tigray
  count: 41 >= 40
  Console : {LINK}
  Prendre en charge : tocsin router ack {ID} -r NOM --url https://tocsin.example.org
  Décider : tocsin router decide {ID} -r NOM --action-taken TEXTE --url https://tocsin.example.org

Autres décisions : --declined MOTIF ou --referred-to DESTINATAIRE (au lieu de --action-taken).
La CLI lit le jeton de votre organisation dans TOCSIN_TOKEN.
Toutes les alertes de votre organisation : https://tocsin.example.org/"""


def test_a_json_chat_message_in_french_with_the_console_link(server):
    chat = server()
    notifier = ChatNotifier(
        Chat(url=f"json://127.0.0.1:{chat.port}/duty/room"), Audience("fr", "https://tocsin.example.org")
    )
    assert notifier.send(a_message()) == Outcome(True, False, "sent")
    [(path, body)] = chat.received
    assert path == "/duty/room"
    assert body["title"] == "[TOCSIN] EN COURS CRITIQUE : 1 alerte (country=ETH)"
    assert body["message"] == CHAT_FR  # no evidence lines in a chat: the console has them
    assert body["type"] == "failure"  # a critical alert: the service's red
    assert notifier.render(a_message()) == f"{body['title']}\n\n{CHAT_FR}".encode()


def test_a_mattermost_style_url_in_english_and_an_escalation(server):
    chat = server()
    notifier = ChatNotifier(
        Chat(url=f"mmost://127.0.0.1:{chat.port}/{TOKEN}"), Audience("en", "https://tocsin.example.org")
    )
    assert notifier.send(a_message(level=2, severity="WARNING")).ok
    [(path, body)] = chat.received
    assert path == f"/hooks/{TOKEN}"  # Mattermost's incoming webhook
    lines = body["text"].splitlines()
    assert lines[:3] == [
        "[TOCSIN ESCALATION] FIRING WARNING: 1 alert (country=ETH)",
        "Escalated (level 2): nobody acknowledged in time.",
        "",
    ]
    assert f"  Console: {LINK}" in lines
    assert f"  Acknowledge: tocsin router ack {ID} -r NAME --url https://tocsin.example.org" in lines
    assert body["username"] == "tocsin"


def attempts_until_final(send, attempts: int) -> list:
    """(attempt, ok, retryable, final) of each attempt, as a channel's lane makes them."""
    made = []
    for attempt in range(1, attempts + 1):
        outcome = send()
        made.append((attempt, outcome.ok, outcome.retryable, is_final(outcome, attempt, attempts)))
        if made[-1][-1]:
            return made
    return made


def test_a_server_error_is_retried_then_delivered(server):
    chat = server(500)
    notifier = ChatNotifier(Chat(url=f"json://127.0.0.1:{chat.port}/hook?retry=3"))  # apprise's retry: off
    attempts = attempts_until_final(lambda: notifier.send(a_message()), 5)
    assert attempts == [(1, False, True, False), (2, True, False, True)]
    assert len(chat.received) == 2  # one request an attempt: only the router retries


@pytest.mark.parametrize(
    "code, retryable", [(400, False), (403, False), (404, False), (408, True), (429, True)]
)
def test_client_errors_are_final_but_timeouts_and_throttling(server, code, retryable):
    chat = server(code, code)
    notifier = ChatNotifier(Chat(url=f"mmost://127.0.0.1:{chat.port}/{TOKEN}"))
    outcome = notifier.send(a_message())
    assert (outcome.ok, outcome.retryable) == (False, retryable)
    assert outcome.detail.startswith(f"HTTP {code}: ")
    assert [a[0] for a in attempts_until_final(lambda: notifier.send(a_message()), 2)] == (
        [1, 2] if retryable else [1]
    )
    assert TOKEN not in outcome.detail


def test_a_refused_connection_is_retried_and_its_detail_hides_the_token(caplog):
    caplog.set_level(logging.DEBUG)  # apprise's and urllib3's debug lines name the request's path
    notifier = ChatNotifier(Chat(url=f"mmost://127.0.0.1:{free_port()}/{TOKEN}", timeout="2s"))
    outcome = notifier.send(a_message())
    assert (outcome.ok, outcome.retryable) == (False, True)
    assert "connection error" in outcome.detail.lower()
    said = [r.getMessage() for r in caplog.records if r.name.startswith(("apprise", "urllib3"))]
    assert any(f"/hooks/{REDACTED}" in line for line in said)  # the line is kept, its token is not
    assert not [line for line in said if TOKEN in line]


def test_secrets_are_what_apprise_hides_of_the_url():
    telegram = "tgram://123456789:AAHk3y5ecretT0kenValue/-100200300/"
    assert url_problem(telegram) is None
    line = f"POST https://api.telegram.org/bot123456789:AAHk3y5ecretT0kenValue/sendMessage ({telegram})"
    assert redact(line) == f"POST https://api.telegram.org/bot{REDACTED}:{REDACTED}/sendMessage ({REDACTED})"
    plain = "json://127.0.0.1:9/hooks/duty"  # nothing secret in it: log lines that name it are kept
    assert url_problem(plain) is None
    assert redact("POST /hooks/duty to 127.0.0.1:9") == "POST /hooks/duty to 127.0.0.1:9"
    with_password = "json://duty:Pa55w0rd-x@127.0.0.1:9/hooks"
    assert url_problem(with_password) is None
    assert redact("login duty:Pa55w0rd-x") == f"login duty:{REDACTED}"


def test_a_chat_receiver_through_the_config_and_notifier_for(server):
    chat = server()
    config = parse_router_config(
        {
            "version": 1,
            "external_url": "https://tocsin.example.org/",
            "route": {"receiver": "field-officers"},
            "receivers": [
                {
                    "name": "field-officers",
                    "organisation": "o",
                    "language": "fr",
                    "channels": [{"chat": {"url": f"json://127.0.0.1:{chat.port}/room", "timeout": "5s"}}],
                }
            ],
            "organisations": [{"name": "o", "token_sha256": "0" * 64}],
        }
    )
    [channel] = config.receivers["field-officers"].channels
    notifier = notifier_for(channel)
    assert (notifier.kind, notifier.spec.timeout) == ("chat", 5)
    assert notifier.send(a_message()).ok
    [(_, body)] = chat.received
    assert body["message"] == CHAT_FR
