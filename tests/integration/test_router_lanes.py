"""A receiver that hangs delays nobody else: each channel of each receiver sends on its own lane.

A real router (its ledger on the real broker, its HTTP API, its run loop) with a webhook that accepts
connections and never answers (each attempt waits out the channel's 5 s timeout, then retries): the
other receiver's notification, an acknowledgement over the API and an escalation at its deadline each
come within 1 s of when they are due, measured on the ledger's own times and the API's answer. Before
the lanes, deliveries (and their retries' sleeps) ran in the router's one thread under the lock the API
takes: the hung webhook held up all three for the whole of its attempts (3 x 5 s + backoff here).
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.faults.test_fuzz_http import call, create_topics
from tests.unit.test_router_service import alert
from tocsin.organisations import token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import read_ledger
from tocsin.router.service import Router

pytestmark = pytest.mark.integration

ESCALATE_S = 3


class Silent:
    """A TCP server that accepts every connection and reads, but never answers."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        for conn in self.held:
            conn.close()
        self.sock.close()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_a_hung_webhook_delays_no_other_delivery_answer_or_escalation(bootstrap, tmp_path):
    silent = Silent()
    stem = time.time_ns()
    topics = {k: f"test.lanes-{k}.{stem}.v1" for k in ("alerts", "ledger", "notifications", "responses")}
    create_topics(bootstrap, list(topics.values()))
    config = parse_router_config(
        {
            "version": 1,
            "route": {
                "receiver": "focal",
                "group_by": ["alertname", "country"],
                "group_wait": "1s",
                "routes": [
                    {"matchers": ['country=~"SDN|ETH"'], "receiver": "a-stuck", "continue": True},
                    {"matchers": ['country=~"SDN|ETH"'], "receiver": "focal", "escalation": "onwards"},
                ],
            },
            "escalations": {"onwards": {"steps": [{"receiver": "region", "after": f"{ESCALATE_S}s"}]}},
            "receivers": [
                {
                    "name": "a-stuck",
                    "organisation": "other",
                    "channels": [
                        {"webhook": {"url": f"http://127.0.0.1:{silent.port}/hook", "timeout": "5s"}}
                    ],
                },
                {
                    "name": "focal",
                    "organisation": "igad",
                    "channels": [{"file": {"path": str(tmp_path / "f")}}],
                },
                {
                    "name": "region",
                    "organisation": "igad",
                    "channels": [{"file": {"path": str(tmp_path / "r")}}],
                },
            ],
            "organisations": [
                {"name": "igad", "token_sha256": token_digest("igad-token")},
                {"name": "other", "token_sha256": token_digest("other-token")},
            ],
            "retry": {"attempts": 3, "backoff": "1s"},
        }
    )
    router = Router(config, {"bootstrap_servers": [bootstrap]}, topics)
    api = RouterAPI(router).start()
    router.start()
    stop = threading.Event()
    loop = threading.Thread(target=router.run, args=(stop, 50), daemon=True)
    loop.start()
    try:
        with router.lock:
            router.receive(alert("acked:SDN", country="SDN"), 0, 0)
            router.receive(alert("escalated:ETH", country="ETH"), 0, 1)

        def entries(kind, **match):
            return [
                e
                for e in read_ledger(router.client, topics["ledger"])
                if e.kind == kind and all(e.payload.get(k) == v for k, v in match.items())
            ]

        # The stuck receiver's first attempt is under way (it will hang for 5 s): now the rest.
        wait_for(lambda: silent.held, 10, "the stuck webhook's connection")
        delivered = wait_for(
            lambda: entries("notification", receiver="focal", status="DELIVERED"), 10, "focal's notification"
        )
        queued = {e.payload["delivery"]: e for e in entries("delivery.queued", receiver="focal")}
        for entry in delivered:
            waited = (entry.at - queued[entry.payload["delivery"]].at) / 1000
            assert waited < 1, f"focal's delivery waited {waited:.2f} s behind the hung webhook"
        assert len(json.loads((tmp_path / "f").read_text().splitlines()[0])["alerts"]) == 1

        started = time.monotonic()
        status, answer, _ = call(
            api.port,
            "POST",
            "/v1/alerts/acked:SDN/responses",
            json.dumps({"kind": "acknowledged", "responder": "amina"}).encode(),
            {"Authorization": "Bearer igad-token", "Content-Type": "application/json"},
        )
        took = time.monotonic() - started
        assert status == 201, answer
        assert took < 1, f"the acknowledgement took {took:.2f} s behind the hung webhook"

        [escalation] = wait_for(lambda: entries("escalation"), ESCALATE_S + 10, "the escalation")
        assert escalation.subject_id == "escalated:ETH"  # the acknowledged alert is not escalated
        [notified] = [
            e
            for e in entries("group.notified")
            if e.subject_id in {q.subject_id for q in queued.values()} and "ETH" in e.subject_id
        ]
        late = (escalation.at - notified.at) / 1000 - ESCALATE_S
        assert late < 1, f"the escalation came {late:.2f} s after its deadline"
        [sent] = wait_for(
            lambda: entries("notification", receiver="region", status="DELIVERED"),
            10,
            "the escalation's delivery",
        )
        assert (sent.at - escalation.at) / 1000 < 1
        # All the while, the stuck receiver's lane was still on its first attempts.
        assert not entries("notification", receiver="a-stuck", status="FAILED")
    finally:
        stop.set()
        loop.join(5)
        api.stop()
        router.close()
        silent.close()
