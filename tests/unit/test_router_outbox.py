"""Deliveries owed as state: queued in the ledger, retried when due (backoff with jitter, Retry-After),
and resumed by a restarted router from the ledger alone, at the same attempt and the same time."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

from tests.unit.test_router_service import T0, Clock, alert, router_for
from tocsin.kafka.local_broker import free_port
from tocsin.organisations import token_digest
from tocsin.router.config import parse_router_config
from tocsin.router.notify.http import retry_after
from tocsin.router.notify.retry import retry_delay
from tocsin.router.state import RouterState


def test_the_backoff_doubles_up_to_its_cap_less_a_fixed_jitter_and_waits_out_retry_after():
    delays = [retry_delay(n, 1, 8, "d") for n in range(1, 7)]
    for n, delay in enumerate(delays, start=1):
        base = min(2 ** (n - 1), 8)
        assert 0.8 * base <= delay <= base
    assert delays == [retry_delay(n, 1, 8, "d") for n in range(1, 7)]  # the same from the same ledger
    assert delays != [retry_delay(n, 1, 8, "e") for n in range(1, 7)]  # other deliveries: other jitter
    assert retry_delay(1, 1, 60, "d", retry_after_s=30) == 30
    assert retry_delay(1, 1, 60, "d", retry_after_s=3600) == 60  # honoured up to the cap
    assert retry_delay(3, 1, 60, "d", retry_after_s=0.5) == retry_delay(3, 1, 60, "d")


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC).timestamp()
    assert retry_after("120") == 120
    assert retry_after(format_datetime(datetime(2026, 12, 1, 12, 1, 30, tzinfo=UTC), usegmt=True), now) == 90
    assert retry_after(format_datetime(datetime(2026, 12, 1, 11, 0, tzinfo=UTC), usegmt=True), now) == 0
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("-5") is None


def config():
    return parse_router_config(
        {
            "version": 1,
            "route": {"receiver": "hook", "group_wait": "0s"},
            "receivers": [
                {
                    "name": "hook",
                    "organisation": "un",
                    "channels": [{"webhook": {"url": f"http://127.0.0.1:{free_port()}/", "timeout": "1s"}}],
                }
            ],
            "organisations": [{"name": "un", "token_sha256": token_digest("un")}],
            "retry": {"attempts": 3, "backoff": "10s"},
        }
    )


def test_a_failed_delivery_waits_for_its_retry_and_a_restarted_router_makes_it_when_due():
    cfg, clock = config(), Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    router.tick()  # due at once: queued, attempted, refused (retryable)
    [queued] = [e for e in router.writer.entries if e.kind == "delivery.queued"]
    [first] = [e for e in router.writer.entries if e.kind == "notification"]
    assert (first.payload["attempt"], first.payload["status"]) == (1, "RETRYING")
    assert first.payload["delivery"] == queued.payload["delivery"]
    delay = first.payload["retry_in_s"]
    assert 8 <= delay <= 10
    assert queued.payload["alerts"][0]["id"] == "a1"  # the message as decided, for the lane to send

    # A restart: the state from the ledger alone owes the delivery, from attempt 2, when the delay ends.
    restarted = router_for(cfg, clock, router.writer.entries)
    [owed] = restarted.state.pending.values()
    assert (owed.id, owed.attempt, owed.next_at) == (queued.payload["delivery"], 1, first.at / 1000 + delay)
    clock.now = T0 + delay - 0.5
    restarted.tick()
    assert [e.kind for e in restarted.writer.entries].count("notification") == 1  # not yet
    clock.now = T0 + delay + 0.5
    restarted.tick()
    attempts = [e.payload for e in restarted.writer.entries if e.kind == "notification"]
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "RETRYING"), (2, "RETRYING")]
    clock.now += 30
    restarted.tick()
    attempts = [e.payload for e in restarted.writer.entries if e.kind == "notification"]
    assert [(a["attempt"], a["status"]) for a in attempts][-1] == (3, "FAILED")
    assert RouterState.rebuilt(restarted.writer.entries).pending == {}  # failed for good: owed no more


def test_resolution_notices_go_only_to_receivers_told_of_the_firing(tmp_path):
    from tests.unit.test_router_service import config as file_config
    from tocsin.router.outbox import resolution_notices

    cfg, _ = file_config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("told", country="SDN"), 0, 0)  # to focal, notified firing
    clock.now = T0 + 10
    router.tick()
    router.receive(alert("told", country="SDN", status="RESOLVED", seq=2), 0, 1)
    router.receive(alert("untold", country="ETH"), 0, 2)  # resolved within group_wait: never news
    router.receive(alert("untold", country="ETH", status="RESOLVED", seq=2), 0, 3)
    clock.now = T0 + 100
    router.tick()
    assert resolution_notices(router.writer.entries) == (1, 0)

    # Without the firing notice's delivery in the ledger, the resolution is counted as untold.
    [firing] = [
        e.payload["delivery"]
        for e in router.writer.entries
        if e.kind == "delivery.queued" and e.payload["alerts"][0]["status"] == "FIRING"
    ]
    without = [
        e for e in router.writer.entries if not (e.kind == "notification" and e.payload["delivery"] == firing)
    ]
    assert resolution_notices(without) == (1, 1)
