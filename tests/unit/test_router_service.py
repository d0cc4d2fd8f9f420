"""The router's decisions with a controllable clock: grouped notification, escalation after a missed
deadline, acknowledgement stopping it, muting, organisation scope, and a state rebuilt from the ledger.

The ledger here is an in-memory list with the same chain; the real topic is in the integration test."""

from __future__ import annotations

import json

import pytest

from tocsin.organisations import token_digest
from tocsin.router.config import parse_router_config
from tocsin.router.ledger import chain, describe, verify
from tocsin.router.service import Forbidden, Invalid, Router
from tocsin.router.state import RouterState

T0 = 1_800_000_000.0


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class MemoryLedger:
    def __init__(self, entries=None):
        self.entries = list(entries or [])

    def append(self, at_ms, kind, subject_id, actor, payload):
        entry = chain(self.entries[-1] if self.entries else None, at_ms, kind, subject_id, actor, payload)
        self.entries.append(entry)
        return entry


def config(tmp_path, repeat=None, retention=None):
    files = {name: tmp_path / f"{name}.jsonl" for name in ("focal", "region", "un")}
    escalation = {"steps": [{"receiver": "region", "after": "60s"}, {"receiver": "un", "after": "120s"}]}
    if repeat:
        escalation["repeat"] = repeat
    data = {
        "version": 1,
        "route": {
            "receiver": "un",
            "group_wait": "10s",
            "group_interval": "1m",
            "repeat_interval": "1h",
            "routes": [{"matchers": ['country="SDN"'], "receiver": "focal", "escalation": "chain"}],
        },
        "escalations": {"chain": escalation},
        "inhibit_rules": [
            {
                "source_matchers": ['severity="critical"'],
                "target_matchers": ['severity="watch"'],
                "equal": ["country"],
            }
        ],
        "receivers": [
            {"name": n, "organisation": n, "channels": [{"file": {"path": str(p)}}]} for n, p in files.items()
        ],
        "organisations": [{"name": n, "token_sha256": token_digest(n)} for n in files],
        "retry": {"attempts": 2, "backoff": "1s"},
    }
    if retention:
        data["retention"] = retention
    return parse_router_config(data), files


def router_for(cfg, clock, entries=None):
    router = Router(cfg, client={}, topics={}, clock=clock)
    router.writer = MemoryLedger(entries)
    router.state = RouterState.rebuilt(router.writer.entries)
    router.published = []
    router.publish = lambda topic, key, value: router.published.append(topic)
    return router


def alert(id_="r:SDN:1", severity="WARNING", status="FIRING", seq=1, country="SDN"):
    return {
        "id": id_,
        "sequence": seq,
        "rule_id": "r",
        "rule_version": "v",
        "status": status,
        "severity": severity,
        "country": country,
        "region": None,
        "risk_factors": [1],
        "indicator_ids": ["rf1.armed_conflict"],
        "values": [{"name": "n", "value": 5.0, "threshold": 3.0, "comparator": ">="}],
        "window_start": 0,
        "window_end": 1,
        "evidence": [],
        "distinct_sources": 2,
        "summary": "s",
        "first_fired": 1,
        "last_updated": 1,
        "labels": {"alertname": "r", "country": country, "severity": severity.lower()},
    }


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_grouped_notification_then_escalation_after_the_missed_deadline_until_acknowledged(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    router.receive(alert("a2", severity="CRITICAL"), 0, 1)
    router.tick()
    assert lines(files["focal"]) == []  # group_wait
    clock.now = T0 + 10
    router.tick()
    [sent] = lines(files["focal"])
    assert sorted(a["annotations"]["alert_id"] for a in sent["alerts"]) == [
        "a1",
        "a2",
    ]  # one grouped notification
    clock.now = T0 + 69
    router.tick()
    assert lines(files["region"]) == []
    clock.now = T0 + 70  # 60 s after the notification, nobody acknowledged: the next level
    router.tick()
    assert sorted(a["annotations"]["alert_id"] for n in lines(files["region"]) for a in n["alerts"]) == [
        "a1",
        "a2",
    ]
    router.respond("region", "a1", {"kind": "acknowledged", "responder": "amina"})
    clock.now = T0 + 70 + 120
    router.tick()
    assert [a["annotations"]["alert_id"] for n in lines(files["un"]) for a in n["alerts"]] == ["a2"]
    clock.now = T0 + 10_000
    router.tick()
    assert len(lines(files["un"])) == 1  # no repeat configured: once
    assert verify(router.writer.entries) == []
    assert router.state.unacknowledged() == ["a2"]


def test_repeat_until_someone_acknowledges(tmp_path):
    cfg, files = config(tmp_path, repeat="5m")
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    for t in (10, 70, 190, 490, 790):
        clock.now = T0 + t
        router.tick()
    assert len(lines(files["un"])) == 3  # level 2, then two repeats
    router.respond("un", "a1", {"kind": "action_taken", "responder": "jo", "description": "envoy sent"})
    clock.now = T0 + 5000
    router.tick()
    assert len(lines(files["un"])) == 3


def test_inhibited_alerts_are_not_notified_and_the_muting_is_recorded(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("crit", severity="CRITICAL"), 0, 0)
    router.receive(alert("watch", severity="WATCH"), 0, 1)
    clock.now = T0 + 10
    router.tick()
    [sent] = lines(files["focal"])
    assert [a["annotations"]["alert_id"] for a in sent["alerts"]] == ["crit"]
    muted = [e for e in router.writer.entries if e.kind == "alert.muted"]
    assert [(e.subject_id, e.payload["by"], e.payload["source"]) for e in muted] == [
        ("watch", "inhibition", "crit")
    ]


def test_silences_mute_and_are_audited(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    silence = router.create_silence(
        "un", {"matchers": ['country="SDN"'], "author": "ops", "reason": "drill", "duration_s": 3600}
    )
    router.receive(alert("a1"), 0, 0)
    clock.now = T0 + 10
    router.tick()
    assert lines(files["focal"]) == []
    kinds = [e.kind for e in router.writer.entries]
    assert kinds[0] == "silence.created" and "alert.muted" in kinds
    with pytest.raises(Invalid) as caught:
        router.create_silence("un", {"matchers": [], "author": "ops", "reason": "x", "duration_s": 60})
    assert caught.value.errors == [
        "matchers: at least one is needed (a silence of everything is not allowed)"
    ]
    router.expire_silence("un", silence["id"], "ops")
    router.receive(alert("a1", seq=2), 0, 1)
    clock.now = T0 + 100
    router.tick()
    assert len(lines(files["focal"])) == 1


def test_an_organisation_answers_only_what_was_routed_to_it(tmp_path):
    cfg, _ = config(tmp_path)
    router = router_for(cfg, Clock())
    router.receive(alert("a1"), 0, 0)
    assert [a["id"] for a in router.visible("focal")] == ["a1"]
    assert router.visible("region") == []
    with pytest.raises(Forbidden):
        router.respond("region", "a1", {"kind": "acknowledged", "responder": "x"})
    with pytest.raises(Invalid) as caught:
        router.respond("focal", "a1", {"kind": "declined", "responder": " "})
    assert caught.value.errors == [
        "responder: missing (who answers for the organisation)",
        "reason: declined needs a reason",
    ]
    with pytest.raises(Invalid) as caught:
        router.respond("focal", "a1", {"kind": "referred", "responder": "x", "referred_to": "nobody"})
    assert caught.value.errors == ["referred_to: undefined receiver 'nobody'"]


def test_state_rebuilt_from_the_ledger_keeps_a_pending_deadline(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    first = router_for(cfg, clock)
    first.receive(alert("a1"), 2, 41)
    clock.now = T0 + 10
    first.tick()  # notified; the escalation deadline is T0 + 70
    restarted = router_for(cfg, clock, first.writer.entries)
    assert restarted.state.offsets == {2: 42}
    clock.now = T0 + 70
    restarted.tick()
    restarted.tick()
    assert len(lines(files["region"])) == 1  # escalated once, by the restarted router
    rebuilt = RouterState.rebuilt(restarted.writer.entries)
    assert rebuilt.escalations["a1"].level == 1


def test_an_alert_event_received_again_or_out_of_date_is_ignored(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    clock.now = T0 + 10
    router.tick()
    router.receive(alert("a1", status="RESOLVED", seq=2), 0, 1)
    clock.now = T0 + 100  # past group_interval: the resolution is notified
    router.tick()
    received = len(router.writer.entries)
    router.receive(alert("a1"), 0, 2)  # the FIRING event delivered a second time
    router.receive(alert("a1", status="RESOLVED", seq=2), 0, 3)
    clock.now = T0 + 10_000
    router.tick()
    assert len(router.writer.entries) == received
    assert router.state.alerts["a1"]["status"] == "RESOLVED"
    assert [n["status"] for n in lines(files["focal"])] == ["firing", "resolved"]
    assert lines(files["region"]) == []  # resolved: no escalation was reopened


def test_a_resolved_alert_is_archived_after_the_retention_and_still_recognised(tmp_path):
    cfg, _ = config(tmp_path, retention="1d")
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    router.receive(alert("a2"), 0, 1)
    clock.now = T0 + 10
    router.tick()
    router.respond("focal", "a1", {"kind": "acknowledged", "responder": "amina"})
    clock.now = T0 + 20
    router.receive(alert("a1", status="RESOLVED", seq=2), 0, 2)
    clock.now = T0 + 20 + 86_399
    router.tick()  # the resolution is notified; a day since it resolved not yet over
    assert sorted(router.state.alerts) == ["a1", "a2"]
    clock.now = T0 + 20 + 86_400
    router.tick()
    router.tick()
    [archived] = [e for e in router.writer.entries if e.kind == "alert.archived"]
    assert archived.subject_id == "a1" and describe(archived) == "archived: resolved more than 86400 s ago"
    assert sorted(router.state.alerts) == ["a2"]  # a2 still fires
    assert [a["id"] for a in router.visible("focal")] == ["a2"]
    assert "a1" not in router.state.acks and "a1" not in router.state.routed
    with pytest.raises(Forbidden):
        router.respond("focal", "a1", {"kind": "comment", "responder": "amina", "description": "late"})
    entries = len(router.writer.entries)
    router.receive(alert("a1", status="RESOLVED", seq=2), 0, 3)  # delivered again: still known
    assert len(router.writer.entries) == entries
    rebuilt = RouterState.rebuilt(router.writer.entries)
    assert sorted(rebuilt.alerts) == ["a2"] and rebuilt.archived == {"a1": 2}
    assert verify(router.writer.entries) == []


def test_an_answer_is_published_before_its_ledger_entry_and_again_with_the_same_id(tmp_path):
    from tocsin.serde.avro import decode

    cfg, _ = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a1"), 0, 0)
    clock.now = T0 + 10
    router.tick()
    records = []
    router.publish = lambda topic, key, value: records.append((topic, decode(value)))
    append = router.writer.append

    def killed(*args):
        raise RuntimeError("killed before the ledger entry")

    router.writer.append = killed
    answer = {"kind": "acknowledged", "responder": "amina"}
    with pytest.raises(RuntimeError):
        router.respond("focal", "a1", answer)
    assert [(t, r["kind"]) for t, r in records] == [("responses", "ACKNOWLEDGED")]  # not lost with the kill
    router.writer.append = append  # restarted; the client, who got no answer, sends it again
    router.respond("focal", "a1", answer)
    assert records[1][1]["id"] == records[0][1]["id"]  # the same answer: a consumer keeps one
    assert [e.kind for e in router.writer.entries].count("response") == 1


def test_a_resolution_is_sent_only_to_whom_the_alert_was_notified_firing(tmp_path):
    cfg, files = config(tmp_path)
    clock = Clock()
    router = router_for(cfg, clock)
    # a1 fires and resolves within group_wait: the receiver was never told it fired, so nothing at all.
    router.receive(alert("a1"), 0, 0)
    router.receive(alert("a1", status="RESOLVED", seq=2), 0, 1)
    clock.now = T0 + 10
    router.tick()
    assert lines(files["focal"]) == []
    # a2 fires (notified), then resolves: the resolution is news, and sent.
    router.receive(alert("a2"), 0, 2)
    clock.now = T0 + 30
    router.tick()
    router.receive(alert("a2", status="RESOLVED", seq=2), 0, 3)
    clock.now = T0 + 100
    router.tick()
    sent = [[(a["annotations"]["alert_id"], a["status"]) for a in n["alerts"]] for n in lines(files["focal"])]
    assert sent == [[("a2", "firing")], [("a2", "resolved")]]


def test_send_resolved_false_keeps_resolutions_from_a_receiver(tmp_path):
    cfg, files = config(tmp_path)
    cfg.receivers["focal"] = cfg.receivers["focal"].model_copy(update={"send_resolved": False})
    clock = Clock()
    router = router_for(cfg, clock)
    router.receive(alert("a2"), 0, 0)
    clock.now = T0 + 10
    router.tick()
    router.receive(alert("a2", status="RESOLVED", seq=2), 0, 1)
    clock.now = T0 + 100
    router.tick()
    assert [len(n["alerts"]) for n in lines(files["focal"])] == [1]  # the firing one only
    assert "a2" not in {a for g in router.state.groups.values() for a in g.alerts}  # and the group is done
