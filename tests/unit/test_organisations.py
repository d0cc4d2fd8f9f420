"""One organisation model for the router and the intake: the same YAML list configures both, a token is
valid for both, a revoked organisation is refused by both, and the token check compares every digest."""

from __future__ import annotations

import http.client

import pytest
import yaml

from tocsin import organisations
from tocsin.connectors.intake import SECRET_ENV, IntakeServer, authenticate, parse_config
from tocsin.organisations import Organisation, bearer_token, find_by_token, token_digest
from tocsin.router.api import RouterAPI
from tocsin.router.config import RouterConfigError, parse_router_config
from tocsin.router.service import Router
from tocsin.web.app import authorise

ORGANISATIONS = f"""
organisations:
  - {{name: igad, token_sha256: {token_digest("igad-token")}}}
  - {{name: old-partner, token_sha256: {token_digest("old-token")}, revoked: true}}
  - {{name: un-osapg, token_sha256: {token_digest("un-token")}, admin: true}}
"""


def parse_router(orgs: list):
    receivers = [{"name": "igad-room", "organisation": "igad", "channels": [{"file": {"path": "-"}}]}]
    return parse_router_config(
        {"version": 1, "route": {"receiver": "igad-room"}, "receivers": receivers, "organisations": orgs}
    )


@pytest.fixture
def configs(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    orgs = yaml.safe_load(ORGANISATIONS)["organisations"]
    return parse_config({"secret": "s" * 32, "port": 0, "organisations": orgs}), parse_router(orgs)


def test_the_same_list_configures_the_router_and_the_intake(configs):
    intake, router = configs
    assert list(router.organisations.values()) == intake.organisations
    assert all(isinstance(o, Organisation) for o in intake.organisations)
    assert [(o.name, o.admin, o.revoked) for o in intake.organisations] == [
        ("igad", False, False),
        ("old-partner", False, True),
        ("un-osapg", True, False),
    ]


def _status(port: int, method: str, path: str, token: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    body = b"{}" if method == "POST" else None
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_one_token_is_valid_for_both_and_a_revoked_one_is_refused_by_both(configs):
    intake_config, routing = configs
    # Neither server reaches Kafka here: the intake is not started (no producer) and answers an empty
    # report with 400 once the token is accepted; the router only lists its (empty) state.
    intake = IntakeServer(intake_config, client={}).start()
    api = RouterAPI(Router(routing, client={}, topics={})).start()
    try:
        intake_port, api_port = intake.port, api.port
        answers = {
            token: (
                _status(intake_port, "POST", "/v1/reports", token),
                _status(api_port, "GET", "/v1/alerts", token),
            )
            for token in ("igad-token", "old-token", "guessed")
        }
    finally:
        intake.stop()
        api.stop()
    assert answers == {"igad-token": (400, 200), "old-token": (403, 403), "guessed": (401, 401)}


def test_the_token_check_compares_every_digest_even_when_the_first_matches(configs, monkeypatch):
    intake_config, routing = configs
    compared = []

    def spy(a, b):
        compared.append(b)
        return a == b

    monkeypatch.setattr(organisations, "compare_digest", spy)
    digests = [o.token_sha256 for o in intake_config.organisations]
    assert find_by_token(intake_config.organisations, "igad-token").name == "igad"
    assert compared == digests  # the first matched; the others were compared all the same
    compared.clear()
    assert authenticate(intake_config, "Bearer igad-token") == ("igad", token_digest("igad-token"))
    assert compared == digests
    compared.clear()
    assert authorise(routing.organisations.values(), "Bearer igad-token").name == "igad"
    assert compared == digests


def test_bearer_tokens_are_read_in_any_case_of_the_scheme():
    assert [bearer_token(h) for h in ("Bearer abc", "bearer  abc ", "Basic abc", "Bearer ", None)] == [
        "abc",
        "abc",
        None,
        None,
        None,
    ]


def test_names_and_tokens_are_each_given_once():
    orgs = yaml.safe_load(ORGANISATIONS)["organisations"]
    twice = [*orgs, orgs[0] | {"token_sha256": token_digest("other")}, orgs[1] | {"name": "new-partner"}]
    with pytest.raises(RouterConfigError) as caught:
        parse_router(twice)
    assert caught.value.errors == [
        "organisations: entries 0 and 3 have the same name 'igad'; entries 1 and 4 have the same token_sha256"
    ]
