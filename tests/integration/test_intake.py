"""The HTTP intake against the real broker: auth, limits, every error, and 202 only after Kafka's ack."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from prometheus_client import REGISTRY

from tocsin.connectors.intake import IntakeConfig, pseudonym, serve
from tocsin.kafka.local_broker import free_port
from tocsin.kafka.read import read_topic
from tocsin.organisations import token_digest
from tocsin.serde.avro import decode, default_registry

pytestmark = pytest.mark.integration

SECRET = "intake-test-secret-0123456789abcdef"
TOKEN = "token-of-the-darfur-monitors"
REVOKED = "token-of-a-former-partner"
IDENTITY = "Amina Yusuf, +249 912 345 678"
REPORT = {
    "title": "Shelling of the market",
    "event_time": "2024-05-01T07:30:00+03:00",
    "country": "SDN",
    "location_name": "El Fasher",
    "latitude": 13.6289,
    "longitude": 25.3494,
    "fatalities": {"best": 4},
    "reporter": IDENTITY,
    "source_type": "FIELD_MONITOR",
}


@pytest.fixture
def start_intake():
    servers = []

    def start(client: dict, topic: str = "unused", **settings):
        config = IntakeConfig(
            secret=SECRET,
            port=0,
            topic=topic,
            organisations=[
                {"name": "darfur-monitors", "token_sha256": token_digest(TOKEN)},
                {"name": "former-partner", "token_sha256": token_digest(REVOKED), "revoked": True},
            ],
            **settings,
        )
        server = serve(config, client)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def post(server, body: bytes | dict, token: str | None = TOKEN, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    conn.request("POST", "/v1/reports", body=raw, headers=sent)
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    return response.status, payload, response


def raw_request(server, headers: bytes) -> str:
    """Send only a POST's headers (never a body) and read the answer until the server closes."""
    start = b"POST /v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(start + headers + b"\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer.decode()


def all_messages(bootstrap: str, topic: str) -> list:
    return read_topic({"bootstrap_servers": bootstrap}, topic)


def requests_with(status: int) -> float:
    return REGISTRY.get_sample_value("tocsin_intake_requests_total", {"status": str(status)}) or 0.0


def test_health_and_no_or_unknown_token_is_401_and_a_revoked_one_403(bootstrap, start_intake):
    server = start_intake({"bootstrap_servers": [bootstrap]})
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/healthz")
    assert conn.getresponse().status == 200
    conn.close()

    status, payload, response = post(server, REPORT, token=None)
    assert (status, payload) == (401, {"errors": ["authorization: a bearer token is required"]})
    assert response.getheader("WWW-Authenticate") == "Bearer"
    assert post(server, REPORT, token="guessed")[:2] == (401, {"errors": ["authorization: unknown token"]})
    assert post(server, REPORT, token=REVOKED)[:2] == (
        403,
        {"errors": ["authorization: this token has been revoked"]},
    )


def test_400_lists_every_error_and_invalid_json_gets_one(bootstrap, start_intake):
    server = start_intake({"bootstrap_servers": [bootstrap]})
    bad = REPORT | {"country": "Sudan", "latitude": -91, "reporter": " ", "source_type": "NEWS", "extra": 1}
    assert post(server, bad)[:2] == (
        400,
        {
            "errors": [
                "country: 'Sudan' is not an ISO 3166-1 alpha-3 country code",
                "latitude: Input should be greater than or equal to -90",
                "reporter: Input should not be blank",
                "source_type: Input should be 'FIELD_MONITOR' or 'CIVIL_SOCIETY'",
                "extra: Extra inputs are not permitted",
            ]
        },
    )
    assert post(server, b'{"title": "x"')[:2] == (
        400,
        {"errors": ["body: invalid JSON: Expecting ',' delimiter at line 1 column 14"]},
    )


def test_413_is_decided_before_the_body_is_read_and_411_without_a_length(bootstrap, start_intake):
    server = start_intake({"bootstrap_servers": [bootstrap]}, max_body_bytes=1024)
    # Headers only, announcing 10 MB: the answer comes without the server waiting for any of the body.
    answer = raw_request(server, b"Content-Type: application/json\r\nContent-Length: 10000000\r\n")
    assert answer.startswith("HTTP/1.1 413 ")
    assert answer.endswith('{"errors":["body: 10000000 bytes is more than the limit of 1024"]}')
    # A client that sends its whole (too big) body still gets the 413, not a reset connection.
    padded = json.dumps(REPORT | {"description": "x" * 200_000}).encode()
    assert post(server, padded)[:2] == (
        413,
        {"errors": [f"body: {len(padded)} bytes is more than the limit of 1024"]},
    )
    assert raw_request(server, b"").startswith("HTTP/1.1 411 ")
    assert raw_request(server, b"Transfer-Encoding: chunked\r\n").startswith("HTTP/1.1 411 ")


def test_429_over_the_rate_with_retry_after(bootstrap, start_intake):
    server = start_intake({"bootstrap_servers": [bootstrap]}, rate_per_second=0.01, burst=2)
    assert post(server, b"{}")[0] == 400
    assert post(server, b"{}")[0] == 400
    status, payload, response = post(server, REPORT)
    assert (status, payload) == (429, {"errors": ["rate: too many requests; retry after 100 s"]})
    assert response.getheader("Retry-After") == "100"


def test_202_only_once_on_the_topic_with_the_reporter_pseudonymised_and_nowhere_in_clear(
    bootstrap, make_topic, start_intake, capfd
):
    topic = make_topic("intake")
    server = start_intake({"bootstrap_servers": [bootstrap]}, topic=topic)
    accepted_before = requests_with(202)
    capfd.readouterr()
    first = post(server, REPORT)
    second = post(server, REPORT | {"coarsen_km": 25, "source_type": "CIVIL_SOCIETY"})
    # What the process printed, whatever logging configuration an earlier test left (loggers are cached).
    logs = "".join(capfd.readouterr())
    assert first[0] == second[0] == 202, (first, second)
    ids = [first[1]["id"], second[1]["id"]]
    assert all(i.startswith("intake:") and len(i) == len("intake:") + 36 for i in ids)
    assert requests_with(202) - accepted_before == 2

    messages = all_messages(bootstrap, topic)
    records = {decode(m.value, default_registry().get("IncidentReport"))["id"]: m for m in messages}
    assert sorted(records) == sorted(ids)
    plain = decode(records[ids[0]].value)
    assert records[ids[0]].key == ids[0].encode()
    assert plain["source"] == "intake:darfur-monitors"
    assert plain["source_record_id"] == ids[0].removeprefix("intake:")
    assert plain["reporter"] == pseudonym(SECRET, "darfur-monitors", IDENTITY)
    assert (plain["latitude"], plain["longitude"]) == (13.6289, 25.3494)
    assert plain["attributes"] == {"organisation": "darfur-monitors"}
    coarse = decode(records[ids[1]].value)
    assert coarse["reporter"] == plain["reporter"]  # the same person, recognisably, without the name
    assert coarse["attributes"] == {"organisation": "darfur-monitors", "coarsen_km": "25"}
    assert (coarse["latitude"], coarse["longitude"]) != (13.6289, 25.3494)

    # The identity, or any part of it, is in no byte on the topic (the intake uses no dead-letter topic:
    # a bad report is answered with 400 and never stored), nor in the logs, nor is the token.
    secrets = [IDENTITY, "Amina", "Yusuf", "912 345 678", TOKEN]
    for message in messages:
        raw = (message.key or b"") + message.value + b"".join(k.encode() + v for k, v in message.headers)
        for secret in secrets:
            assert secret.encode() not in raw
    assert logs.count("intake request") == 2
    assert all(s not in logs for s in secrets)


def test_503_and_no_id_when_no_broker_acknowledges(start_intake):
    nothing_listens = f"127.0.0.1:{free_port()}"
    server = start_intake({"bootstrap_servers": [nothing_listens]}, send_timeout="1s")
    status, payload, response = post(server, REPORT)
    assert (status, payload) == (503, {"errors": ["kafka: the report was not stored; send it again later"]})
    assert response.getheader("Retry-After") == "5"
