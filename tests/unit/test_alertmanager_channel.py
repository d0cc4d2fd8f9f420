"""The alertmanager channel: its configuration (every error, exact), what it posts (Prometheus's shape,
to a local HTTP server), how its failures are classified, and the re-send schedule of firing alerts."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.unit.test_router_service import T0, Clock, MemoryLedger
from tocsin.kafka.local_broker import free_port
from tocsin.organisations import token_digest
from tocsin.router.config import RouterConfigError, parse_router_config
from tocsin.router.notify import notifier_for
from tocsin.router.notify.payload import Audience, Message
from tocsin.router.resend import KeepAlive, resend_due
from tocsin.router.service import Router
from tocsin.router.state import RouterState


def document(channels: list[dict], **extra) -> dict:
    return {
        "version": 1,
        "external_url": "https://tocsin.example.org",
        "route": {
            "receiver": "un-room",
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {"name": "un-room", "organisation": "un", "channels": channels},
            {"name": "other", "organisation": "un", "channels": [{"file": {"path": "-"}}]},
        ],
        "organisations": [{"name": "un", "token_sha256": token_digest("t")}],
        **extra,
    }


def errors_of(channels: list[dict]) -> list[str]:
    with pytest.raises(RouterConfigError) as raised:
        parse_router_config(document(channels))
    return raised.value.errors


def test_the_channel_is_configured_with_a_base_url_and_a_resend_interval():
    config = parse_router_config(
        document([{"alertmanager": {"url": "http://am:9093/prefix/", "resend": "30s"}}])
    )
    [channel] = config.receivers["un-room"].channels
    assert channel.kind == "alertmanager"
    assert (channel.alertmanager.url, channel.alertmanager.resend, channel.alertmanager.timeout) == (
        "http://am:9093/prefix/",
        30,
        10,
    )
    defaults = parse_router_config(document([{"alertmanager": {"url": "https://am.example.org"}}]))
    assert defaults.receivers["un-room"].channels[0].alertmanager.resend == 60  # Prometheus's resend_delay


def test_every_error_of_the_channel_is_listed():
    assert errors_of(
        [
            {"alertmanager": {"url": "ftp://am"}},
            {"alertmanager": {"url": "http://am", "resend": "0s", "retries": 3}},
        ]
    ) == [
        "receivers.0.channels.0.alertmanager.url: String should match pattern '^https?://'",
        "receivers.0.channels.1.alertmanager.resend: duration '0s' must be greater than zero",
        "receivers.0.channels.1.alertmanager.retries: Extra inputs are not permitted",
    ]
    assert errors_of(
        [
            {"alertmanager": {"url": "http://am:9093/api/v2/alerts"}},
            {"alertmanager": {"url": "http://am:9093/?a=1"}},
            {"alertmanager": {"url": "http://"}},
            {"alertmanager": {"url": "http://am:9093"}, "file": {"path": "-"}},
        ]
    ) == [
        "receivers.0.channels.0.alertmanager.url: 'http://am:9093/api/v2/alerts' is an API path: give the "
        "Alertmanager's base URL; /api/v2/alerts is added to it",
        "receivers.0.channels.1.alertmanager.url: 'http://am:9093/?a=1' has a query or a fragment: "
        "/api/v2/alerts is added to it",
        "receivers.0.channels.2.alertmanager.url: 'http://' has no host",
        "receivers.0.channels.3: exactly one of webhook, email, file, chat, alertmanager (got 2)",
    ]


def alert(alert_id="r:SDN:1", status="FIRING", seq=1, severity="WARNING", country="SDN"):
    return {
        "id": alert_id, "sequence": seq, "rule_id": "r", "rule_version": "v1", "status": status,
        "severity": severity, "country": country, "region": None, "risk_factors": [1],
        "indicator_ids": ["rf1.armed_conflict"], "window_start": 0, "window_end": 1,
        "evidence": [{"record_id": "acled:1", "url": "https://example.org/1"}, {"record_id": "ucdp:2"}],
        "values": [{"name": "n", "value": 5.0, "threshold": 3.0, "comparator": ">="}],
        "distinct_sources": 2, "summary": "deaths", "first_fired": 1_799_990_000_000,
        "last_updated": 1_799_999_000_000,
        "labels": {"alertname": "r", "country": country, "severity": severity.lower()},
    }  # fmt: skip


class Alertmanagers(ThreadingHTTPServer):
    """A local HTTP server in Alertmanager's place: what it was posted, and the answers it gives."""

    def __init__(self):
        self.posted: list[tuple[str, list]] = []
        self.headers: list[dict] = []
        self.answers: list[tuple[int, dict, bytes]] = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):  # noqa: N802, N805
                body = json.loads(handler.rfile.read(int(handler.headers["Content-Length"])))
                self.posted.append((handler.path, body))
                self.headers.append(dict(handler.headers))
                status, headers, text = self.answers.pop(0) if self.answers else (200, {}, b"")
                handler.send_response(status)
                for name, value in headers.items():
                    handler.send_header(name, value)
                handler.send_header("Content-Length", str(len(text)))
                handler.end_headers()
                handler.wfile.write(text)

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def server():
    s = Alertmanagers()
    yield s
    s.shutdown()


def channel_to(url: str, resend: str = "1m"):
    config = parse_router_config(document([{"alertmanager": {"url": url, "resend": resend}}]))
    return config.receivers["un-room"].channels[0]


def test_it_posts_alerts_as_prometheus_does(server):
    notifier = notifier_for(channel_to(server.url + "/"))
    notifier.clock = lambda: T0
    message = Message("un-room", "g", {}, [alert(), alert("r:SDN:2", status="RESOLVED")])
    assert notifier.send(message).ok
    [(path, body)] = server.posted
    assert path == "/api/v2/alerts"
    firing, resolved = body
    assert firing == {
        "labels": {"alertname": "r", "country": "SDN", "severity": "warning"},
        "annotations": {
            "summary": "deaths",
            "description": "\n".join(
                [
                    "Console: https://tocsin.example.org/alerts/r%3ASDN%3A1",
                    "Acknowledge: tocsin router ack r:SDN:1 -r NAME --url https://tocsin.example.org",
                    "Decide: tocsin router decide r:SDN:1 -r NAME --action-taken TEXT --url https://tocsin.example.org",
                ]
            ),
            "alert_id": "r:SDN:1",
            "rule_version": "v1",
            "evidence": "https://example.org/1 ucdp:2",
        },
        "startsAt": "2027-01-15T05:13:20.000Z",
        "endsAt": "2027-01-15T08:04:00.000Z",  # now + 4 re-send intervals
        "generatorURL": "https://tocsin.example.org/alerts/r%3ASDN%3A1",
    }
    assert resolved["endsAt"] == "2027-01-15T07:43:20.000Z"  # when it resolved: Alertmanager ends it
    assert json.loads(notifier.render(message)) == body


def test_failures_say_whether_a_retry_can_help(server):
    notifier = notifier_for(channel_to(server.url))
    message = Message("un-room", "g", {}, [alert()])
    server.answers = [
        (503, {"Retry-After": "7"}, b"busy"),
        (400, {}, b'"bad alert: label name \\"\\" is invalid"'),
        (429, {}, b""),
    ]
    assert notifier.send(message) == (False, True, "HTTP 503 busy", 7.0)
    assert notifier.send(message) == (
        False,
        False,
        'HTTP 400 "bad alert: label name \\"\\" is invalid"',
        None,
    )
    assert notifier.send(message) == (False, True, "HTTP 429", None)
    refused = notifier_for(channel_to(f"http://127.0.0.1:{free_port()}")).send(message)
    assert (refused.ok, refused.retryable) == (False, True)
    assert refused.detail == "ConnectError: All connection attempts failed"


def test_it_reaches_an_alertmanager_behind_a_proxy_with_the_http_config_of_every_http_channel(
    server, tmp_path
):
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    spec = {"url": server.url, "http_config": {"authorization": {"credentials_file": str(token)}}}
    config = parse_router_config(document([{"alertmanager": spec}]))
    assert (
        notifier_for(config.receivers["un-room"].channels[0]).send(Message("un-room", "g", {}, [alert()])).ok
    )
    assert server.headers[0]["Authorization"] == "Bearer s3cret"
    assert server.headers[0]["Content-Type"] == "application/json"


# -- the re-send schedule ------------------------------------------------------------------------------


def router_with(channels: list[dict], **extra):
    clock = Clock()
    router = Router(parse_router_config(document(channels, **extra)), client={}, topics={}, clock=clock)
    router.writer = MemoryLedger()
    router.state = RouterState.rebuilt([])
    router.publish = lambda topic, key, value: None
    return router, clock


def due_ids(router, sent, now) -> list[tuple[str, int, list[str]]]:
    return [
        (d.receiver, d.channel, [a["id"] for a in d.alerts])
        for d in resend_due(router.state, router.config, sent, now)
    ]


def test_a_firing_alert_is_due_one_interval_after_it_was_last_pushed_until_it_resolves(server):
    router, clock = router_with([{"alertmanager": {"url": server.url, "resend": "1m"}}])
    router.receive(alert(), 0, 0)
    assert due_ids(router, {}, T0 + 3600) == []  # still in its group's group_wait: never pushed
    clock.now = T0 + 10
    router.tick()  # the group's notification pushes it
    assert len(server.posted) == 1
    notified = router.state.groups['root:{alertname="r",country="SDN"}'].notified_at
    assert due_ids(router, {}, notified + 59) == []
    assert due_ids(router, {}, notified + 60) == [("un-room", 0, ["r:SDN:1"])]
    sent = {("un-room", 0, "r:SDN:1"): notified + 60}  # re-sent then: the next one an interval later
    assert due_ids(router, sent, notified + 119) == []
    assert due_ids(router, sent, notified + 120) == [("un-room", 0, ["r:SDN:1"])]
    router.receive(alert(status="RESOLVED", seq=2), 0, 1)
    assert due_ids(router, sent, notified + 600) == []  # resolved: its resolution ends it, no re-send


def test_each_alertmanager_channel_has_its_own_interval_and_no_other_channel_is_due(server):
    router, clock = router_with(
        [
            {"alertmanager": {"url": server.url, "resend": "1m"}},
            {"file": {"path": "-"}},
            {"alertmanager": {"url": server.url, "resend": "5m"}},
        ]
    )
    router.receive(alert(), 0, 0)
    clock.now = T0 + 10
    router.tick()
    assert due_ids(router, {}, T0 + 10 + 60) == [("un-room", 0, ["r:SDN:1"])]
    assert due_ids(router, {}, T0 + 10 + 300) == [("un-room", 0, ["r:SDN:1"]), ("un-room", 2, ["r:SDN:1"])]


def test_a_muted_alert_is_not_kept_alive(server):
    router, clock = router_with([{"alertmanager": {"url": server.url}}])
    router.receive(alert(), 0, 0)
    clock.now = T0 + 10
    router.tick()
    router.create_silence(
        "un", {"matchers": ['country="SDN"'], "author": "jo", "reason": "r", "duration_s": 600}
    )
    assert due_ids(router, {}, T0 + 100) == []  # silenced: Alertmanager lets it end at its endsAt
    assert due_ids(router, {}, T0 + 700) == [("un-room", 0, ["r:SDN:1"])]  # the silence over: back


def test_an_inhibited_alert_is_not_kept_alive(server):
    rules = [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="watch"'],
            "equal": ["country"],
        }
    ]
    router, clock = router_with([{"alertmanager": {"url": server.url}}], inhibit_rules=rules)
    router.receive(alert("r:SDN:watch", severity="WATCH"), 0, 0)
    router.receive(alert("r:SDN:critical", severity="CRITICAL"), 0, 1)
    clock.now = T0 + 10
    router.tick()
    assert due_ids(router, {}, T0 + 100) == [("un-room", 0, ["r:SDN:critical"])]


def test_a_restarted_router_re_sends_from_its_ledger(server):
    router, clock = router_with([{"alertmanager": {"url": server.url}}])
    router.receive(alert(), 0, 0)
    clock.now = T0 + 10
    router.tick()
    again, _ = router_with([{"alertmanager": {"url": server.url}}])
    again.state = RouterState.rebuilt(router.writer.entries)  # what a restart reads back
    assert due_ids(again, {}, T0 + 70) == [("un-room", 0, ["r:SDN:1"])]


def test_keep_alive_sends_what_is_due_and_remembers_it(server):
    router, clock = router_with([{"alertmanager": {"url": server.url, "resend": "1m"}}])
    router.receive(alert(), 0, 0)
    clock.now = T0 + 10
    router.tick()
    keepalive = KeepAlive(router.config)
    [due] = resend_due(router.state, router.config, keepalive.sent, T0 + 70)
    assert keepalive.send(due)
    [_, (path, [resent])] = server.posted
    assert (path, resent["labels"]["country"], resent["annotations"]["alert_id"]) == (
        "/api/v2/alerts",
        "SDN",
        "r:SDN:1",
    )
    keepalive.tick(router.state, T0 + 70)  # queues it for its thread, marked sent at once
    assert keepalive.sent == {("un-room", 0, "r:SDN:1"): T0 + 70}
    assert resend_due(router.state, router.config, keepalive.sent, T0 + 100) == []
    router.receive(alert(status="RESOLVED", seq=2), 0, 1)
    keepalive.tick(router.state, T0 + 200)
    assert keepalive.sent == {}  # resolved: forgotten


def test_the_audience_is_the_receivers():
    channel = channel_to("http://am:9093")
    assert notifier_for(channel).audience == Audience("en", "https://tocsin.example.org")
