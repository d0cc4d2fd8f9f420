"""SASL/OAUTHBEARER's tokens: OAuth 2.0's client-credentials grant (RFC 6749 section 4.4) at a token
endpoint (an OpenID Connect provider's: Keycloak, Entra ID, Okta...), one provider for both Kafka clients.

kafka-python asks its `sasl_oauth_token_provider` for a token (`token()`) each time it connects;
librdkafka calls its `oauth_cb` (the provider called with librdkafka's `sasl.oauthbearer.config`) when
it needs a token, and again at 80% of the lifetime it was told. librdkafka's own OIDC client was not used
so that both clients get their tokens the same way (one cache, one error message, one test). A token is
reused until 80% of its lifetime has passed (as Kafka's Java client and librdkafka do), so the clients of
a process ask the endpoint once per token, not once per connection.

The client secret travels in an HTTP Basic header (client_secret_basic, RFC 6749 section 2.3.1), so the
endpoint must be https, but on loopback (a test's endpoint, a local sidecar). The provider pickles as its
settings, with the secret as where it is read (tocsin.credentials), never its tokens.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from kafka.net.sasl.oauth import AbstractTokenProvider

from tocsin.telemetry.logging import get_logger

TIMEOUT_S = 10.0
REFRESH_AT = 0.8  # of a token's lifetime
_MAX_ANSWER = 1024 * 1024
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class TokenError(RuntimeError):
    """The token endpoint did not give a token: unreachable, refused the client, or answered nonsense."""


def endpoint_problem(url: str) -> str | None:
    """Why `url` cannot be the token endpoint, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return f"{url!r}: not an http(s) URL"
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        return f"{url}: http would send the client secret in the clear; use https (http: loopback only)"
    return None


def token_from_answer(payload: object, now: float) -> tuple[str, float]:
    """(access token, expiry in epoch seconds) of a token endpoint's JSON answer (RFC 6749 section 5.1)."""
    if not isinstance(payload, dict):
        raise TokenError("the answer is not a JSON object")
    token, lifetime = payload.get("access_token"), payload.get("expires_in")
    if not isinstance(token, str) or not token:
        raise TokenError("the answer has no access_token")
    # expires_in is only RECOMMENDED by RFC 6749, but every provider sends it, and librdkafka must be
    # told when a token expires: without it, a token is refused rather than guessed at.
    if isinstance(lifetime, str) and lifetime.isdigit():
        lifetime = int(lifetime)
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        raise TokenError("the answer has no positive expires_in")
    return token, now + lifetime


def error_from_answer(status: int, body: bytes) -> str:
    """'HTTP 401: invalid_client (bad secret)': the status and, if the body is RFC 6749's error JSON,
    its error code and description (never the body otherwise: it may echo what was sent)."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("error"), str):
        described = payload.get("error_description")
        return f"HTTP {status}: {payload['error']}" + (
            f" ({described})" if isinstance(described, str) else ""
        )
    return f"HTTP {status}"


class ClientCredentials(AbstractTokenProvider):
    """Access tokens for `client_id` from `endpoint`, cached until REFRESH_AT of their lifetime."""

    def __init__(
        self,
        endpoint: str,
        client_id: str,
        client_secret: str,
        scope: str | None = None,
        timeout_s: float = TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ):
        self.endpoint, self.client_id, self.scope = endpoint, client_id, scope
        self._secret, self.timeout_s, self._clock = client_secret, timeout_s, clock
        self._lock = threading.Lock()
        self._token: tuple[str, float, float] | None = None  # (token, expiry, refresh at), epoch seconds

    def __reduce__(self):
        return ClientCredentials, (self.endpoint, self.client_id, self._secret, self.scope, self.timeout_s)

    def __repr__(self) -> str:
        return f"ClientCredentials({self.endpoint}, client_id={self.client_id})"

    def current(self) -> tuple[str, float]:
        """(token, expiry in epoch seconds): the cached one, or a new one once REFRESH_AT has passed."""
        with self._lock:  # one request for every client of the process that asks at once
            now = self._clock()
            if self._token is None or now >= self._token[2]:
                token, expiry = self._fetch(now)
                self._token = (token, expiry, now + (expiry - now) * REFRESH_AT)
            return self._token[0], self._token[1]

    def token(self) -> str:  # kafka-python
        return self.current()[0]

    def __call__(self, _librdkafka_config: str) -> tuple[str, float, str, dict]:  # librdkafka's oauth_cb
        token, expiry = self.current()
        return token, expiry, self.client_id, {}

    def _fetch(self, now: float) -> tuple[str, float]:
        form = {"grant_type": "client_credentials", **({"scope": self.scope} if self.scope else {})}
        # RFC 6749 section 2.3.1: each of the pair form-encoded, then joined and base64-encoded.
        pair = f"{urllib.parse.quote(self.client_id, safe='')}:{urllib.parse.quote(self._secret, safe='')}"
        request = urllib.request.Request(
            self.endpoint,
            data=urllib.parse.urlencode(form).encode(),
            headers={
                "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
            },
        )
        try:
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
                    payload = json.loads(answer.read(_MAX_ANSWER))
            except urllib.error.HTTPError as error:
                raise TokenError(error_from_answer(error.code, error.read(_MAX_ANSWER))) from None
            except urllib.error.URLError as error:
                raise TokenError(
                    f"cannot reach it: {getattr(error.reason, 'strerror', None) or error.reason}"
                ) from None
            except (OSError, ValueError) as error:  # a timeout, a reset, a body that is not JSON
                raise TokenError(str(error) or type(error).__name__) from None
            return token_from_answer(payload, now)
        except TokenError as error:
            # Both clients retry a failed authentication on their own, and neither says why it failed:
            # the reason is logged here, once per attempt.
            message = f"OAUTHBEARER token endpoint {self.endpoint}: {error}"
            get_logger(stage="kafka").warning("no oauthbearer token", client_id=self.client_id, error=message)
            raise TokenError(message) from None
