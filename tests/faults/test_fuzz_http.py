"""The web stack's edges over real sockets, for the intake and the router's API (both on `tocsin.web`).

Fuzzed requests (hypothesis, derandomised: any method, path, token and body, valid ones changed a
little): every one is answered, never with a 500, every refusal with its reasons, and every report the
intake accepts is on the topic and decodes. Then the edges a hand-written server got wrong: malformed
request lines and lengths, requests that never finish, hundreds of connections at once, readiness while
Kafka does not answer, the OpenAPI documents, and an alert id holding '/'.

`make test` sends >= 5,000 intake and >= 1,000 router requests; `make test-faults` ten times more.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from tests.faults.test_fuzz_edges import fuzz, json_values
from tests.unit.test_intake_model import GOOD as GOOD_REPORT
from tocsin.connectors.intake import IntakeConfig, serve
from tocsin.kafka.local_broker import free_port
from tocsin.kafka.read import read_topic
from tocsin.organisations import token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.service import Router
from tocsin.serde.avro import decode

pytestmark = pytest.mark.integration

TOKENS = {"igad": "igad-token", "un": "un-token", "old": "old-token"}
REGION_ALERT = "threshold:ETH/Tigray:2024-01-07"


def call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    """(status, JSON answer or None, response) of one request on its own connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = None
    return response.status, payload, response


def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; the answer, read until the server closes or a whole answer is in (a
    keep-alive connection stays open), or `timeout`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        try:
            while not _complete(answer) and (chunk := sock.recv(65536)):
                answer += chunk
        except TimeoutError:
            pass
    return answer


def _complete(answer: bytes) -> bool:
    head, sep, body = answer.partition(b"\r\n\r\n")
    lengths = [
        line.split(b":", 1)[1] for line in head.lower().split(b"\r\n") if line.startswith(b"content-length:")
    ]
    return bool(sep and lengths and len(body) >= int(lengths[0]))


def create_topics(bootstrap: str, names: list[str]) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(name, 1, 1) for name in names])
    admin.close()


def answered_properly(status: int, payload) -> bool:
    """Not a server error, and a refusal says why."""
    return status < 500 and (status < 400 or (isinstance(payload, dict) and payload.get("errors")))


# -- the intake ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def intake(bootstrap):

    topic = f"test.fuzz-intake.{time.time_ns()}.v1"
    create_topics(bootstrap, [topic])
    config = IntakeConfig(
        secret="s" * 32,
        port=0,
        topic=topic,
        rate_per_second=1_000_000,
        burst=1_000_000,
        organisations=[
            {"name": "monitors", "token_sha256": token_digest("monitors-token")},
            {"name": "former", "token_sha256": token_digest("former-token"), "revoked": True},
        ],
    )
    server = serve(config, {"bootstrap_servers": [bootstrap]})
    server.accepted = []
    yield server
    server.stop()


intake_tokens = st.sampled_from(["monitors-token", "monitors-token", "former-token", "guessed", ""])
report_bodies = st.one_of(
    st.builds(
        lambda field, value, drop: {
            k: v for k, v in (GOOD_REPORT | {field: value}).items() if not (drop and k == field)
        },
        st.sampled_from(sorted(GOOD_REPORT) + ["extra"]),
        json_values,
        st.booleans(),
    ).map(lambda body: json.dumps(body).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=200),
)


@fuzz(5_000)
@given(
    method=st.sampled_from(["POST"] * 8 + ["GET", "PUT", "DELETE", "PATCH"]),
    path=st.sampled_from(["/v1/reports"] * 8 + ["/v1/report", "/", "/v1/reports/x", "/%ff", "/readyz"]),
    token=intake_tokens,
    body=report_bodies,
)
def test_fuzzed_intake_requests_are_answered_without_a_server_error(intake, method, path, token, body):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    status, payload, _ = call(intake.port, method, path, body if method != "GET" else None, headers)
    assert answered_properly(status, payload), (status, payload)
    if status == 202:
        intake.accepted.append(payload["id"])


def test_every_report_accepted_by_the_fuzzing_is_on_the_topic_and_decodes(bootstrap, intake):
    if not intake.accepted:
        pytest.skip("runs after the intake fuzzing, in the same module")
    records = read_topic({"bootstrap_servers": [bootstrap]}, intake.config.topic)
    ids = [decode(r.value)["id"] for r in records]
    assert sorted(ids) == sorted(intake.accepted)


# -- the router's API ------------------------------------------------------------------------------


def alert(alert_id: str, country: str, region: str | None = None) -> dict:
    return {
        "id": alert_id, "sequence": 1, "rule_id": "threshold", "rule_version": "v1", "status": "FIRING",
        "severity": "WARNING", "country": country, "region": region, "risk_factors": [1],
        "indicator_ids": ["rf1.armed_conflict"], "window_start": 0, "window_end": 1, "evidence": [],
        "values": [{"name": "deaths", "value": 5.0, "threshold": 3.0, "comparator": ">="}],
        "distinct_sources": 2, "summary": "s", "first_fired": 1, "last_updated": 1,
        "labels": {"alertname": "threshold", "country": country, "severity": "warning"},
    }  # fmt: skip


@pytest.fixture(scope="module")
def router_api(bootstrap, tmp_path_factory):

    stem = time.time_ns()
    topics = {
        k: f"test.fuzz-router-{k}.{stem}.v1" for k in ("alerts", "ledger", "notifications", "responses")
    }
    create_topics(bootstrap, list(topics.values()))
    out = tmp_path_factory.mktemp("router")
    config = parse_router_config(
        {
            "version": 1,
            "route": {
                "receiver": "un-room",
                "routes": [{"matchers": ['country="ETH"'], "receiver": "igad-room"}],
            },
            "receivers": [
                {
                    "name": "igad-room",
                    "organisation": "igad",
                    "channels": [{"file": {"path": str(out / "i")}}],
                },
                {"name": "un-room", "organisation": "un", "channels": [{"file": {"path": str(out / "u")}}]},
            ],
            "organisations": [
                {"name": "igad", "token_sha256": token_digest(TOKENS["igad"])},
                {"name": "un", "token_sha256": token_digest(TOKENS["un"]), "admin": True},
                {"name": "old", "token_sha256": token_digest(TOKENS["old"]), "revoked": True},
            ],
        }
    )
    router = Router(config, {"bootstrap_servers": [bootstrap]}, topics)
    api = RouterAPI(router)
    started = api.start()
    assert call(api.port, "GET", "/readyz")[0] == 503  # the ledger not read yet
    router.start()
    with router.lock:
        router.receive(alert(REGION_ALERT, "ETH", "Tigray"), 0, 0)
        router.receive(alert("threshold:SDN:2024-01-07", "SDN"), 0, 1)
    yield started
    api.stop()
    router.close()


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[name]}"} if name in TOKENS else {"Authorization": name}


router_paths = st.one_of(
    st.sampled_from(["/v1/alerts", "/v1/silences", "/v1/silences/x", "/", "/v1", "/openapi.json"]),
    st.sampled_from([REGION_ALERT, quote(REGION_ALERT, safe=""), "threshold:SDN:2024-01-07", "nope"]).map(
        lambda alert_id: f"/v1/alerts/{alert_id}/responses"
    ),
    st.text(alphabet="/%abc:?&=.", max_size=20).map(lambda tail: "/v1/" + tail),
)
response_bodies = st.one_of(
    st.fixed_dictionaries(
        {"kind": st.sampled_from(["acknowledged", "comment", "declined", "referred", "ACTION_TAKEN", "x"])},
        optional={
            "responder": st.text(max_size=10) | json_values,
            "description": st.text(max_size=10) | json_values,
            "reason": st.text(max_size=10) | json_values,
            "referred_to": st.sampled_from(["un-room", "igad-room", "nobody"]) | json_values,
        },
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "matchers": st.lists(st.sampled_from(['country="SDN"', "bad", 'x=~"("']), max_size=2)
            | json_values,
            "author": st.text(max_size=10) | json_values,
            "reason": st.text(max_size=10) | json_values,
            "duration_s": st.floats() | json_values,
            "starts_at": st.floats() | st.text(max_size=5),
            "ends_at": st.floats() | json_values,
        },
    ),
    json_values,
).map(lambda body: json.dumps(body).encode())


@fuzz(1_000)
@given(
    method=st.sampled_from(["GET", "POST", "POST", "POST", "DELETE", "PUT"]),
    path=router_paths,
    who=st.sampled_from(["igad", "un", "old", "Bearer guessed", "Basic abc", ""]),
    body=response_bodies | st.binary(max_size=100),
    query=st.sampled_from(["", "?author=amina", "?author=", "?x=%ff"]),
)
def test_fuzzed_router_requests_are_answered_without_a_server_error(
    router_api, method, path, who, body, query
):
    headers = {"Content-Type": "application/json", **bearer(who)}
    sent = body if method in ("POST", "PUT") else None
    status, payload, _ = call(router_api.port, method, path + query, sent, headers)
    assert answered_properly(status, payload), (status, payload)


def test_an_alert_id_holding_a_slash_is_answered_as_it_is_and_percent_encoded(router_api):
    body = json.dumps({"kind": "comment", "responder": "amina", "description": "seen"}).encode()
    for path_id in (REGION_ALERT, quote(REGION_ALERT, safe="")):
        status, payload, _ = call(
            router_api.port, "POST", f"/v1/alerts/{path_id}/responses", body, bearer("igad")
        )
        assert status == 201, payload
    status, payload, _ = call(
        router_api.port, "POST", f"/v1/alerts/{REGION_ALERT}/responses", body, bearer("un")
    )
    assert (status, payload) == (404, {"errors": ["alert: no such alert routed to this organisation"]})
    [listed] = call(router_api.port, "GET", "/v1/alerts", headers=bearer("igad"))[1]["alerts"]
    assert listed["id"] == REGION_ALERT


def test_the_openapi_documents_describe_each_api(router_api, intake):
    _, router_doc, _ = call(router_api.port, "GET", "/openapi.json")
    assert {
        "/v1/alerts",
        "/v1/alerts/{alert_id}/responses",
        "/v1/silences",
        "/v1/silences/{silence_id}",
    } <= set(router_doc["paths"])
    body = router_doc["paths"]["/v1/alerts/{alert_id}/responses"]["post"]["requestBody"]
    assert set(body["content"]["application/json"]["schema"]["properties"]) == {
        "kind", "responder", "description", "reason", "referred_to"
    }  # fmt: skip
    _, intake_doc, _ = call(intake.port, "GET", "/openapi.json")
    schema = intake_doc["paths"]["/v1/reports"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert {"title", "event_time", "country", "reporter"} <= set(schema["properties"])


# -- the server's limits ---------------------------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"\r\n\r\n",
    b"G\x00ET / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
    b"GET /v1/alerts HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /v1/alerts HTTP/1.1\r\nHost: x\r\n: no-name\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,  # a TLS hello on the plain port
] + [
    b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: " + length + b"\r\n\r\n{}"
    for length in (b"-1", b"abc", b"1e3", b"0x10", b"99999999999999999999999", b"1, 2", b" ", b"+5")
] + [
    b"POST /v1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    b"POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, x\r\n\r\n",
    b"POST /v1/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 70_000 + b"\r\n\r\n",
]  # fmt: skip


@pytest.mark.parametrize("server", ["intake", "router_api"])
def test_malformed_requests_each_get_an_answer(server, request):
    port = request.getfixturevalue(server).port
    for data in MALFORMED * 3:
        answer = raw_exchange(port, data)
        # An answer, never a 5xx: a 400 for what the parser refuses (a 70 KB path or header among them:
        # past 16 KB); what it reads (an unknown HTTP version as 1.1) gets the app's own answer (404, or
        # the console's sign-in page).
        assert re.match(rb"HTTP/1\.1 [1-4]\d\d ", answer), (data[:60], answer[:120])
    assert raw_exchange(port, b"GET\r\n\r\n").startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("server", ["intake", "router_api"])
def test_a_refused_request_still_arriving_gets_its_400_not_a_reset(server, request):
    # A 1 MB request line is refused after its first 16 KB; the client is still sending the rest. Closed
    # at once, the server's kernel would answer that rest with a reset and the 400 would be lost.
    port = request.getfixturevalue(server).port
    for _ in range(3):
        answer = raw_exchange(port, b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer[:120]
        assert json.loads(body) == {"errors": ["request: invalid http request received"]}


def test_requests_that_never_arrive_are_answered_408_and_closed(bootstrap):
    config = IntakeConfig(
        secret="s" * 32,
        port=0,
        request_timeout="1s",
        burst=1000,
        organisations=[{"name": "monitors", "token_sha256": token_digest("monitors-token")}],
    )
    server = serve(config, {"bootstrap_servers": [bootstrap]})
    partial = [b"", b"POST /v1/reports HTTP/1.1\r\nHost: x\r\n", b"POST /v1/rep"]
    slow_body = (
        b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer monitors-token\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(150) as pool:
            answers = list(
                pool.map(lambda i: raw_exchange(server.port, (partial + [slow_body])[i % 4]), range(150))
            )
        took = time.monotonic() - started
    finally:
        server.stop()
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}
    assert took < 8, f"150 stalled clients took {took:.1f} s to be closed"


def hold_and_ask(port: int, clients: int) -> list[bytes]:
    """`clients` connections opened at once and held, then each asks for /healthz: the status lines."""
    socks = [socket.create_connection(("127.0.0.1", port), timeout=40) for _ in range(clients)]

    def ask(sock) -> bytes:
        with sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
            return answer[9:12]

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(ask, socks))


@pytest.mark.parametrize("limit", [1000, 100])
def test_hundreds_of_connections_at_once_are_each_answered(bootstrap, limit):
    orgs = [{"name": "monitors", "token_sha256": token_digest("monitors-token")}]
    config = IntakeConfig(secret="s" * 32, port=0, max_connections=limit, organisations=orgs)
    server = serve(config, {"bootstrap_servers": [bootstrap]})
    refused = REGISTRY.get_sample_value("tocsin_http_refused_total", {"reason": "over_limit"}) or 0
    try:
        statuses = hold_and_ask(server.port, 300)
        after = call(server.port, "GET", "/healthz")[0]
    finally:
        server.stop()
    assert len(statuses) == 300 and after == 200
    if limit > 300:
        assert set(statuses) == {b"200"}
    else:  # past the limit: a 503 at once, not a wait in the backlog for nothing; counted, not logged
        # (a 503 closes its connection, so clients that ask later may find room and get a 200)
        assert set(statuses) <= {b"200", b"503"} and statuses.count(b"503") >= 100
        now = REGISTRY.get_sample_value("tocsin_http_refused_total", {"reason": "over_limit"})
        assert now == refused + statuses.count(b"503")


def test_readiness_fails_while_kafka_does_not_answer(bootstrap):
    orgs = [{"name": "monitors", "token_sha256": token_digest("monitors-token")}]
    dead = serve(
        IntakeConfig(secret="s" * 32, port=0, organisations=orgs),
        {"bootstrap_servers": [f"127.0.0.1:{free_port()}"]},
    )
    live = serve(
        IntakeConfig(secret="s" * 32, port=0, organisations=orgs), {"bootstrap_servers": [bootstrap]}
    )
    try:
        status, payload, _ = call(dead.port, "GET", "/readyz")
        assert status == 503 and payload["errors"][0].startswith("kafka: no broker answered within 2 s")
        assert call(dead.port, "GET", "/healthz")[:2] == (200, {"status": "ok"})  # alive all the same
        assert call(live.port, "GET", "/readyz")[:2] == (200, {"status": "ready"})
    finally:
        dead.stop()
        live.stop()
