"""OAUTHBEARER's token provider (tocsin.oidc) against a real token endpoint on loopback: the
client-credentials grant, one token reused until 80% of its lifetime, both clients' interfaces, every
failure one message, and nothing secret when it is pickled into a Beam job."""

from __future__ import annotations

import base64
import json
import pickle

import pytest
from kafka.net.sasl.oauth import AbstractTokenProvider

from tests.token_endpoint import TokenEndpoint
from tocsin.credentials import Secret
from tocsin.oidc import ClientCredentials, TokenError, error_from_answer, token_from_answer


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_token_is_granted_for_the_client_credentials_and_scope():
    with TokenEndpoint("tocsin-job", "s3cret:with/odd&chars") as endpoint:
        provider = ClientCredentials(endpoint.url, "tocsin-job", "s3cret:with/odd&chars", scope="kafka")
        token = provider.token()
    assert isinstance(provider, AbstractTokenProvider)  # what kafka-python requires
    assert claims(token)["sub"] == "tocsin-job" and claims(token)["scope"] == "kafka"
    (request,) = endpoint.requests
    assert request["form"] == {"grant_type": ["client_credentials"], "scope": ["kafka"]}


def test_one_token_serves_until_80_percent_of_its_lifetime_then_a_new_one_is_asked():
    clock = Clock(1_000_000.0)
    with TokenEndpoint("c", "s", lifetime_s=100) as endpoint:
        provider = ClientCredentials(endpoint.url, "c", "s", clock=clock)
        first, expiry = provider.current()
        assert expiry == 1_000_100.0
        clock.now += 79
        assert provider.token() == first and len(endpoint.requests) == 1
        clock.now += 1
        provider.token()
        assert len(endpoint.requests) == 2


def test_librdkafka_is_given_the_token_its_expiry_and_the_principal():
    with TokenEndpoint("c", "s") as endpoint:
        provider = ClientCredentials(endpoint.url, "c", "s", clock=Clock(50.0))
        token, expiry, principal, extensions = provider("principalClaimName=sub")  # librdkafka's oauth_cb
    assert token == provider.token() and expiry == 50.0 + 3600
    assert (principal, extensions) == ("c", {})


def test_a_refused_client_is_one_message_with_the_endpoints_reason():
    with TokenEndpoint("c", "right") as endpoint:
        with pytest.raises(TokenError) as raised:
            ClientCredentials(endpoint.url, "c", "wrong").token()
    assert str(raised.value) == (
        f"OAUTHBEARER token endpoint {endpoint.url}: HTTP 401: invalid_client (unknown client or bad secret)"
    )


def test_an_unreachable_endpoint_is_one_message():
    with TokenEndpoint("c", "s") as endpoint:
        url = endpoint.url
    with pytest.raises(TokenError) as raised:
        ClientCredentials(url, "c", "s", timeout_s=2).token()
    assert str(raised.value) == f"OAUTHBEARER token endpoint {url}: cannot reach it: Connection refused"


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([], "the answer is not a JSON object"),
        ({"expires_in": 60}, "the answer has no access_token"),
        ({"access_token": "t"}, "the answer has no positive expires_in"),
        ({"access_token": "t", "expires_in": 0}, "the answer has no positive expires_in"),
        ({"access_token": "t", "expires_in": True}, "the answer has no positive expires_in"),
    ],
)
def test_an_answer_without_a_token_or_its_lifetime_is_refused(payload, message):
    with pytest.raises(TokenError) as raised:
        token_from_answer(payload, 0.0)
    assert str(raised.value) == message


def test_a_lifetime_sent_as_text_is_read():
    assert token_from_answer({"access_token": "t", "expires_in": "300"}, 10.0) == ("t", 310.0)


def test_an_error_body_is_quoted_only_as_rfc_6749s_error_fields():
    assert error_from_answer(400, b'{"error": "invalid_scope"}') == "HTTP 400: invalid_scope"
    assert error_from_answer(502, b"<html>upstream echoed client_secret=s</html>") == "HTTP 502"


def test_the_provider_pickles_as_its_settings_with_the_secrets_source(tmp_path):
    (tmp_path / "secret").write_text("client-secret\n")
    secret = Secret("client-secret", f"file:{tmp_path / 'secret'}")
    with TokenEndpoint("c", "client-secret") as endpoint:
        provider = ClientCredentials(endpoint.url, "c", secret, scope="kafka")
        token = provider.token()
        shipped = pickle.dumps(provider)
        assert b"client-secret" not in shipped and token.encode() not in shipped
        worker = pickle.loads(shipped)
        assert claims(worker.token())["sub"] == "c"  # the worker read the file and asked for its own
    assert len(endpoint.requests) == 2
    assert "client-secret" not in repr(provider)
