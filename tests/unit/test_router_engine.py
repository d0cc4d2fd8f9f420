"""The engine is pure: its decisions are entries, computed from the state, the config and the time it is
given; it changes nothing, reads no clock and does no I/O. The router (service.py) writes and applies
them; replaying the same entries into a fresh state gives the same decisions."""

from __future__ import annotations

import copy

from tests.unit.test_router_service import T0, Clock, alert, config, router_for
from tocsin.router.engine import Engine
from tocsin.router.state import RouterState


def test_the_engine_decides_from_what_it_is_given_and_changes_nothing(tmp_path):
    cfg, _ = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    router.receive(alert("a2", severity="CRITICAL"), 0, 1)
    state = RouterState.rebuilt(router.writer.entries)
    before = copy.deepcopy(state)
    engine = Engine(cfg)

    assert list(engine.tick(state, T0 + 5)) == []  # within group_wait: nothing
    decided = list(engine.tick(state, T0 + 10))
    assert [kind for kind, *_ in decided] == ["delivery.queued", "group.notified"]
    assert decided == list(engine.tick(state, T0 + 10))  # the same again: nothing was changed
    assert state == before

    # The router, at that time, writes exactly those entries (and then makes the delivery).
    clock.now = T0 + 10
    router.tick()
    written = [
        (e.kind, e.subject_id, e.actor, e.payload)
        for e in router.writer.entries[len(before_entries(router)) :]
    ]
    assert written[: len(decided)] == [tuple(d) for d in decided]
    assert [e.kind for e in router.writer.entries][-1] == "notification"


def before_entries(router):
    return [e for e in router.writer.entries if e.kind in ("alert.received", "alert.routed")]
