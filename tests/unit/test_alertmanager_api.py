"""The router's Alertmanager API v2 over HTTP (the real server), on a router driven step by step with its
ledger in memory: Alertmanager's JSON shapes (checked against models of its OpenAPI spec), what each
organisation sees, the filters' semantics, tocsin's answers in annotations, silences in the ledger, and
Alertmanager's error bodies (a JSON string, one line) for bad input."""

from __future__ import annotations

import datetime as dt
import http.client
import json
from typing import Literal
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from tests.unit.test_router_service import Clock, MemoryLedger
from tocsin.organisations import token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import parse_router_config
from tocsin.router.notify.alertmanager import fingerprint
from tocsin.router.service import Router
from tocsin.router.state import RouterState

TOKENS = {"igad": "igad-token", "un": "un-token"}
TIGRAY, AMHARA, DARFUR = "r:ETH/Tigray:1", "r:ETH/Amhara:1", "r:SDN:1"


# Alertmanager's shapes, from its api/v2/openapi.yaml (v0.35.0): the required fields, nothing else.
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AlertStatus(_Strict):
    state: Literal["unprocessed", "active", "suppressed"]
    silencedBy: list[str]  # noqa: N815 (the spec's names)
    inhibitedBy: list[str]  # noqa: N815
    mutedBy: list[str]  # noqa: N815


class ReceiverReference(_Strict):
    name: str


class GettableAlert(_Strict):
    labels: dict[str, str]
    annotations: dict[str, str]
    receivers: list[ReceiverReference]
    fingerprint: str
    startsAt: dt.datetime  # noqa: N815
    updatedAt: dt.datetime  # noqa: N815
    endsAt: dt.datetime  # noqa: N815
    generatorURL: str  # noqa: N815
    status: AlertStatus

    model_config = ConfigDict(extra="forbid", strict=False)  # times are strings in JSON


class AlertGroup(_Strict):
    labels: dict[str, str]
    routeLabels: dict[str, str]  # noqa: N815
    receiver: ReceiverReference
    alerts: list[GettableAlert]


class Matcher(_Strict):
    name: str
    value: str
    isRegex: bool  # noqa: N815
    isEqual: bool  # noqa: N815


class GettableSilence(_Strict):
    id: str
    status: dict[Literal["state"], Literal["expired", "active", "pending"]]
    updatedAt: dt.datetime  # noqa: N815
    matchers: list[Matcher]
    startsAt: dt.datetime  # noqa: N815
    endsAt: dt.datetime  # noqa: N815
    createdBy: str  # noqa: N815
    comment: str
    annotations: dict[str, str]

    model_config = ConfigDict(extra="forbid", strict=False)


class VersionInfo(_Strict):
    version: str
    revision: str
    branch: str
    buildUser: str  # noqa: N815
    buildDate: str  # noqa: N815
    goVersion: str  # noqa: N815


class Status(_Strict):
    cluster: dict
    versionInfo: VersionInfo  # noqa: N815
    config: dict[Literal["original"], str]
    uptime: dt.datetime

    model_config = ConfigDict(extra="forbid", strict=False)


def alert(alert_id, country, severity="WARNING", status="FIRING", seq=1):
    return {
        "id": alert_id, "sequence": seq, "rule_id": "r", "rule_version": "v1", "status": status,
        "severity": severity, "country": country, "region": None, "risk_factors": [1],
        "indicator_ids": ["rf1.armed_conflict"], "window_start": 0, "window_end": 1, "evidence": [],
        "values": [{"name": "n", "value": 5.0, "threshold": 3.0, "comparator": ">="}],
        "distinct_sources": 2, "summary": f"s {alert_id}", "first_fired": 1_799_990_000_000,
        "last_updated": 1_799_999_000_000,
        "labels": {"alertname": "r", "country": country, "severity": severity.lower()},
    }  # fmt: skip


@pytest.fixture
def served(tmp_path):
    files = str(tmp_path)
    config = parse_router_config(
        {
            "version": 1,
            "external_url": "https://tocsin.example.org",
            "route": {
                "receiver": "un-room",
                "routes": [{"matchers": ['country="ETH"'], "receiver": "igad-room", "escalation": "up"}],
            },
            "escalations": {"up": {"steps": [{"receiver": "un-room", "after": "1h"}]}},
            "inhibit_rules": [
                {
                    "source_matchers": ['severity="critical"'],
                    "target_matchers": ['severity="watch"'],
                    "equal": ["country"],
                }
            ],
            "receivers": [
                {"name": "igad-room", "organisation": "igad", "channels": [{"file": {"path": f"{files}/i"}}]},
                {"name": "un-room", "organisation": "un", "channels": [{"file": {"path": f"{files}/u"}}]},
            ],
            "organisations": [
                {"name": "igad", "token_sha256": token_digest(TOKENS["igad"])},
                {"name": "un", "token_sha256": token_digest(TOKENS["un"]), "admin": True},
            ],
        }
    )
    clock = Clock()
    router = Router(config, client={}, topics={}, clock=clock)
    router.writer = MemoryLedger()
    router.state = RouterState.rebuilt([])
    router.publish = lambda topic, key, value: None
    router.started = True
    router.receive(alert(TIGRAY, "ETH", "CRITICAL"), 0, 0)
    router.receive(alert(AMHARA, "ETH", "WATCH"), 0, 1)  # inhibited by the critical Tigray alert
    router.receive(alert(DARFUR, "SDN"), 0, 2)
    api = RouterAPI(router, console=False).start()
    yield api, router, clock
    api.stop()


def call(api, method: str, path: str, who: str | None = None, body=None, params=()):
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    headers = {"Authorization": f"Bearer {TOKENS[who]}"} if who else {}
    data = json.dumps(body).encode() if body is not None else None
    query = f"?{urlencode(params)}" if params else ""
    conn.request(method, f"/api/v2{path}{query}", body=data, headers=headers)
    response = conn.getresponse()
    answer = response.status, json.loads(response.read() or b"null")
    conn.close()
    return answer


def test_status_names_only_the_organisations_receivers_and_the_api_release(served):
    api, _, _ = served
    status, body = call(api, "GET", "/status", "igad")
    assert status == 200
    parsed = Status.model_validate(body)
    assert parsed.versionInfo.version == "0.35.0"  # amtool 0.35 does not warn
    assert parsed.cluster == {"name": "tocsin", "status": "disabled", "peers": []}
    assert "igad-room" in parsed.config["original"] and "un-room" not in parsed.config["original"]
    assert call(api, "GET", "/receivers", "un") == (200, [{"name": "un-room"}])


def test_alerts_are_alertmanagers_gettable_alerts_of_the_organisation_only(served):
    api, router, clock = served
    status, body = call(api, "GET", "/alerts", "igad")
    assert status == 200
    alerts = {a["annotations"]["alert_id"]: GettableAlert.model_validate(a) for a in body}
    assert set(alerts) == {TIGRAY, AMHARA}  # not the Sudan alert routed to the UN
    tigray = alerts[TIGRAY]
    assert tigray.fingerprint == fingerprint(TIGRAY)
    assert tigray.receivers == [ReceiverReference(name="igad-room")]
    assert tigray.startsAt == dt.datetime(2027, 1, 15, 5, 13, 20, tzinfo=dt.UTC)
    assert tigray.endsAt == dt.datetime.fromtimestamp(clock.now + 300, dt.UTC)  # updated + resolve_timeout
    assert tigray.generatorURL == "https://tocsin.example.org/alerts/r%3AETH%2FTigray%3A1"
    assert tigray.annotations["console_url"] == tigray.generatorURL
    assert tigray.annotations["escalation_level"] == "0"
    assert "acknowledged" not in tigray.annotations and "decision" not in tigray.annotations
    assert tigray.status == AlertStatus(state="active", silencedBy=[], inhibitedBy=[], mutedBy=[])
    assert alerts[AMHARA].status == AlertStatus(
        state="suppressed", silencedBy=[], inhibitedBy=[fingerprint(TIGRAY)], mutedBy=[]
    )
    assert [a["annotations"]["alert_id"] for a in call(api, "GET", "/alerts", "un")[1]] == [DARFUR]


def test_tocsins_answers_and_escalation_travel_in_annotations(served):
    api, router, clock = served
    router.respond("igad", TIGRAY, {"kind": "acknowledged", "responder": "amina"})
    router.respond(
        "igad", TIGRAY, {"kind": "action_taken", "responder": "amina", "description": "envoy sent"}
    )
    router.state.escalations[AMHARA].level = 1  # as an `escalation` entry leaves it
    body = {a["annotations"]["alert_id"]: a["annotations"] for a in call(api, "GET", "/alerts", "igad")[1]}
    assert body[TIGRAY]["acknowledged"] == "2027-01-15T08:00:00.000Z by igad/amina"
    assert body[TIGRAY]["decision"] == "action_taken by igad/amina: envoy sent"
    assert body[AMHARA]["escalation_level"] == "1"


def ids(body) -> list[str]:
    return sorted(a["annotations"]["alert_id"] for a in body)


def test_the_filters_select_as_alertmanagers_do(served):
    api, _, _ = served
    assert ids(call(api, "GET", "/alerts", "igad", params=[("filter", 'severity="critical"')])[1]) == [TIGRAY]
    both = [("filter", 'alertname="r"'), ("filter", 'severity=~"crit.*|watch"')]
    assert ids(call(api, "GET", "/alerts", "igad", params=both)[1]) == [AMHARA, TIGRAY]
    # amtool's default query: active only, not the inhibited Amhara alert.
    active = [("active", "true"), ("silenced", "false"), ("inhibited", "false"), ("unprocessed", "false")]
    assert ids(call(api, "GET", "/alerts", "igad", params=active)[1]) == [TIGRAY]
    assert ids(call(api, "GET", "/alerts", "igad", params=[("active", "false")])[1]) == [AMHARA]
    assert ids(call(api, "GET", "/alerts", "igad", params=[("receiver", "igad-.*")])[1]) == [AMHARA, TIGRAY]
    assert call(api, "GET", "/alerts", "igad", params=[("receiver", "igad")])[1] == []  # anchored


def test_groups_are_the_organisations_notification_groups(served):
    api, _, _ = served
    status, body = call(api, "GET", "/alerts/groups", "igad")
    assert status == 200
    [group] = [AlertGroup.model_validate(g) for g in body]
    assert group.labels == {"alertname": "r", "country": "ETH"}
    assert group.receiver.name == "igad-room"
    assert sorted(a.annotations["alert_id"] for a in group.alerts) == [AMHARA, TIGRAY]
    # muted=false drops a group whose every alert is muted; this one has an active alert.
    muted = [("muted", "false"), ("filter", 'severity="watch"')]
    assert call(api, "GET", "/alerts/groups", "igad", params=muted) == (200, [])


def test_bad_input_is_a_400_with_alertmanagers_error_body_one_line(served):
    api, _, _ = served
    assert call(api, "GET", "/alerts", "igad", params=[("filter", "country"), ("active", "x")]) == (
        400,
        "filter: bad matcher 'country': expected name=\"value\" with =, !=, =~ or !~; "
        "active: 'x' is not a boolean (true or false)",
    )
    assert call(api, "GET", "/alerts/groups", "igad", params=[("receiver", "(")]) == (
        400,
        "receiver: '(' is not a regular expression: missing ), unterminated subpattern at position 0",
    )
    assert call(api, "GET", "/silences", "igad", params=[("filter", "{a=b}")]) == (
        400,
        "filter: '{a=b}' has braces: give one matcher a filter, like alertname=\"x\"",
    )
    assert call(api, "POST", "/silences", "un", body=[1]) == (
        400,
        "body: a JSON object (a postableSilence) is needed",
    )
    conn = http.client.HTTPConnection("127.0.0.1", api.port, timeout=10)
    conn.request("POST", "/api/v2/silences", body=b"{nope", headers={"Authorization": "Bearer un-token"})
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())) == (
        400,
        "body: not JSON (a postableSilence is needed)",
    )
    conn.close()
    assert call(api, "GET", "/alerts") == (401, "authorization: a bearer token is required")
    assert call(api, "GET", "/nowhere", "un") == (404, "path: no such resource /api/v2/nowhere")
    assert call(api, "POST", "/alerts", "un", body=[]) == (405, "method: use GET")


def posted(**overrides) -> dict:
    return {
        "matchers": [{"name": "country", "value": "SDN", "isRegex": False, "isEqual": True}],
        "startsAt": "2027-01-15T08:00:00Z",
        "endsAt": "2027-01-15T10:00:00Z",
        "createdBy": "jo",
        "comment": "talks",
        **overrides,
    }


def test_silences_are_created_listed_replaced_and_expired_each_in_the_ledger(served):
    api, router, clock = served
    assert call(api, "POST", "/silences", "igad", body=posted()) == (
        403,
        "organisation: silences need an admin organisation",
    )
    status, body = call(api, "POST", "/silences", "un", body=posted())
    assert status == 200
    first = body["silenceID"]
    [listed] = call(api, "GET", "/silences", "igad")[1]  # every organisation sees the silences
    assert GettableSilence.model_validate(listed).status == {"state": "active"}
    assert listed["matchers"] == [{"name": "country", "value": "SDN", "isRegex": False, "isEqual": True}]
    assert call(api, "GET", f"/silence/{first}", "un") == (200, listed)
    assert call(api, "GET", "/alerts", "un")[1][0]["status"]["silencedBy"] == [first]
    # Filters on silences match their matchers' values.
    assert call(api, "GET", "/silences", "un", params=[("filter", 'country="SDN"')])[1] == [listed]
    assert call(api, "GET", "/silences", "un", params=[("filter", 'country="ETH"')])[1] == []
    assert call(api, "GET", "/silences", "un", params=[("active", "false")])[1] == []

    # An update (the id of an existing one): the old one ends and the new one takes its place.
    clock.now += 60
    status, body = call(
        api, "POST", "/silences", "un", body=posted(id=first, comment="longer", endsAt="2027-01-15T12:00:00Z")
    )
    assert status == 200
    second = body["silenceID"]
    assert call(api, "GET", f"/silence/{first}", "un")[1]["status"] == {"state": "expired"}
    assert call(api, "DELETE", f"/silence/{second}", "un") == (200, None)
    assert call(api, "DELETE", f"/silence/{second}", "un") == (400, f"silence: {second} has already expired")
    assert call(api, "DELETE", "/silence/nope", "un") == (404, "silence: no silence nope")
    assert call(api, "POST", "/silences", "un", body=posted(id="nope")) == (404, "silence: no silence nope")

    changes = [
        (e.kind, e.subject_id, e.actor) for e in router.writer.entries if e.kind.startswith("silence.")
    ]
    assert changes == [
        ("silence.created", first, "un/jo"),
        ("silence.expired", first, "un/jo"),
        ("silence.created", second, "un/jo"),
        ("silence.expired", second, "un/alertmanager-api"),
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
matcher_objects = st.fixed_dictionaries(
    {},
    optional={
        "name": st.sampled_from(["country", "a b", ""]) | json_values,
        "value": st.sampled_from(["SDN", "(", "x\\", 'a"b']) | json_values,
        "isRegex": st.booleans() | json_values,
        "isEqual": st.booleans() | json_values,
    },
)
silence_bodies = st.fixed_dictionaries(
    {},
    optional={
        "matchers": st.lists(matcher_objects, max_size=2) | json_values,
        "startsAt": st.sampled_from(["2027-01-15T08:00:00Z", "2027-13-01T00:00:00Z", "now"]) | json_values,
        "endsAt": st.sampled_from(["2027-01-15T10:00:00Z", "2020-01-01T00:00:00+02:00"]) | json_values,
        "createdBy": st.text(max_size=5) | json_values,
        "comment": st.text(max_size=5) | json_values,
        "id": st.sampled_from(["nope", ""]) | json_values,
    },
)
parameters = st.lists(
    st.tuples(
        st.sampled_from(["filter", "active", "silenced", "inhibited", "receiver", "muted", "expired"]),
        st.sampled_from(['country="SDN"', "country", "{a=b}", 'a=~"("', "true", "x", "(", "", "igad-.*"])
        | st.text(max_size=8),
    ),
    max_size=3,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    method=st.sampled_from(["GET", "POST", "DELETE"]),
    path=st.sampled_from(
        ["/alerts", "/alerts/groups", "/silences", "/silence/nope", "/status", "/receivers"]
    ),
    params=parameters,
    body=silence_bodies | json_values,
    who=st.sampled_from(["igad", "un", None]),
)
def test_any_request_is_answered_without_a_server_error_and_a_refusal_says_why_on_one_line(
    served, method, path, params, body, who
):
    api, _, _ = served
    status, payload = call(api, method, path, who, body if method == "POST" else None, params)
    assert status < 500, payload
    if status >= 400:
        assert isinstance(payload, str) and payload and "\n" not in payload, payload
