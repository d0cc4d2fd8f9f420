"""Routing, grouping, inhibition, silences, escalation steps: pure, table-driven, controllable clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.router.config import load_router_config, parse_router_config
from tocsin.router.dispatch import Group, due, group_key, match, next_due
from tocsin.router.escalation import next_step
from tocsin.router.inhibit import inhibited_by
from tocsin.router.matchers import parse_matcher
from tocsin.router.silence import Silence, silenced_by, validate

CONFIG = load_router_config(Path(__file__).parents[2] / "router" / "routes.example.yaml")


@pytest.mark.parametrize(
    "labels, receivers",
    [
        (
            {"country": "SDN", "severity": "critical", "igad": "true", "au": "true", "alertname": "x"},
            ["sdn-focal-point", "igad-situation-room", "au-situation-room", "civil-society-network"],
        ),
        (
            {"country": "ETH", "severity": "warning", "igad": "true", "au": "true"},
            ["igad-situation-room", "civil-society-network"],
        ),
        ({"country": "ETH", "severity": "watch", "igad": "true", "au": "true"}, ["civil-society-network"]),
        (
            {"country": "NGA", "severity": "critical", "au": "true", "alertname": "sexual-violence"},
            ["au-situation-room", "women-network", "civil-society-network"],
        ),
        ({"country": "FRA", "severity": "info"}, ["un-osapg"]),  # no child matches: the root's receiver
        ({}, ["un-osapg"]),
    ],
)
def test_routing_table(labels, receivers):
    assert [r.receiver for r in match(CONFIG.route, labels)] == receivers


@pytest.mark.parametrize(
    "matcher, value, expected",
    [
        ('a="x"', "x", True),
        ('a="x"', "y", False),
        ('a!="x"', "y", True),
        ('a=~"x|y"', "y", True),
        ('a=~"x"', "xx", False),
        ('a!~"x.*"', "xy", False),
        ('a!~"x.*"', "z", True),
        ('a=""', None, True),
    ],
)
def test_matchers(matcher, value, expected):
    labels = {} if value is None else {"a": value}
    assert parse_matcher(matcher).matches(labels) is expected


def test_first_match_wins_without_continue():
    config = parse_router_config(
        {
            "version": 1,
            "route": {
                "receiver": "a",
                "routes": [
                    {"matchers": ['x="1"'], "receiver": "b"},
                    {"matchers": ['x=~"1|2"'], "receiver": "c"},
                ],
            },
            "receivers": [
                {"name": n, "organisation": "o", "channels": [{"file": {"path": "-"}}]} for n in "abc"
            ],
            "organisations": [{"name": "o", "token_sha256": "0" * 64}],
        }
    )
    assert [r.receiver for r in match(config.route, {"x": "1"})] == ["b"]
    assert [r.receiver for r in match(config.route, {"x": "2"})] == ["c"]


def test_group_key_names_the_route_and_its_group_by_values():
    route = CONFIG.route.routes[1]
    assert group_key({"alertname": "r1", "country": "ETH", "severity": "x"}, route) == (
        'root.1:{alertname="r1",country="ETH"}'
    )


def alert(id_, seq=1, status="FIRING", **labels):
    return {"id": id_, "sequence": seq, "status": status, "labels": labels}


def test_grouping_timing_with_a_controllable_clock():
    route = CONFIG.route.routes[1]  # group_wait 30s, group_interval 5m, repeat 12h
    group = Group("k", route.id, route.receiver, created_at=1000.0, alerts={"a": alert("a")})
    assert (due(group, route, 1029), due(group, route, 1030), next_due(group, route)) == (False, True, 1030)
    group.notified_at, group.notified = 1030.0, group.content()
    assert not due(group, route, 1031)  # nothing changed: wait for the repeat interval
    assert next_due(group, route) == 1030 + 43200
    group.alerts["b"] = alert("b")  # a new alert joins: group_interval after the last notification
    assert (due(group, route, 1329), due(group, route, 1330)) == (False, True)
    group.notified_at, group.notified = 1330.0, group.content()
    group.alerts["a"] = alert("a", seq=2, status="RESOLVED")  # a change of state is a change too
    assert due(group, route, 1630)
    group.alerts = {"a": group.alerts["a"]}
    group.notified = group.content()
    assert not due(group, route, 1330 + 43200 + 1)  # only resolved alerts: no repeat


def test_inhibition():
    [rule] = CONFIG.inhibitions  # critical mutes watch of the same country and rule
    critical = alert("c", country="SDN", alertname="r", severity="critical")
    watch = alert("w", country="SDN", alertname="r", severity="watch")
    other_country = alert("o", country="ETH", alertname="r", severity="watch")
    assert inhibited_by(watch, [critical, watch], [rule]) == "c"
    assert inhibited_by(other_country, [critical, other_country], [rule]) is None
    assert inhibited_by(critical, [critical, watch], [rule]) is None
    resolved = {**critical, "status": "RESOLVED"}
    assert inhibited_by(watch, [resolved], [rule]) is None


def test_silences():
    silence = Silence(
        "s1", ('country="SDN"', 'severity=~"watch|warning"'), "amina", "known, in hand", 100.0, 200.0
    )
    assert silenced_by({"country": "SDN", "severity": "watch"}, [silence], 150) == "s1"
    assert silenced_by({"country": "SDN", "severity": "critical"}, [silence], 150) is None
    assert silenced_by({"country": "SDN", "severity": "watch"}, [silence], 200) is None  # ended
    assert silenced_by({"country": "SDN", "severity": "watch"}, [silence], 99) is None  # not started
    assert validate([], "", " ", 10, 10) == [
        "matchers: at least one is needed (a silence of everything is not allowed)",
        "author: missing",
        "reason: missing",
        "ends_at: must be after starts_at",
    ]
    assert validate(["x"], "a", "r", 1, 2) == [
        "matchers.0: bad matcher 'x': expected name=\"value\" with =, !=, =~ or !~"
    ]


def test_escalation_steps_and_repeat():
    policy = CONFIG.escalations["national-regional-un"]  # igad after 2h, un after 4h, repeat 12h
    assert next_step(policy, 0, 1000) == (1, "igad-situation-room", 1000 + 7200)
    assert next_step(policy, 1, 5000) == (2, "un-osapg", 5000 + 14400)
    assert next_step(policy, 2, 9000) == (3, "un-osapg", 9000 + 43200)
    no_repeat = type(policy)(policy.steps, None)
    assert next_step(no_repeat, 2, 9000) is None
