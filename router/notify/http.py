"""One HTTP client for the channels that POST (webhook, Alertmanager), from a channel's http_config.

httpx, not urllib: client certificates and a CA bundle through an SSL context, and the Authorization
header built from a file read at each send; and one deadline over the whole exchange (post), where
urllib's timeout bounds each blocking socket call only.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import ssl
import time
from pathlib import Path

import httpx

from tocsin.router.notify.outcome import Outcome


def ssl_context(http) -> ssl.SSLContext:
    """The system's CAs, or the channel's ca_file; its client certificate when it has one."""
    tls = http.tls_config if http is not None else None
    context = ssl.create_default_context(cafile=tls.ca_file if tls is not None else None)
    if tls is not None and tls.cert_file is not None:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    return context


def auth_headers(http) -> dict[str, str]:
    """The Authorization header of the channel's http_config, its secret read from its file now."""
    if http is None:
        return {}
    if http.authorization is not None:
        credentials = Path(http.authorization.credentials_file).read_text().strip()
        return {"Authorization": f"{http.authorization.type} {credentials}"}
    if http.basic_auth is not None:
        password = Path(http.basic_auth.password_file).read_text().strip()
        pair = f"{http.basic_auth.username}:{password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, http=None) -> httpx.Response:
    """POST `body` and read the answer, all within `timeout`; raises TimeoutError past it, httpx's
    errors for a refused connection or a TLS failure. httpx's own timeouts bound each connect, read and
    write, not their sum: a server that trickles its answer a byte a second would hold the lane for as
    long as it likes. So the request runs under one deadline (asyncio.wait_for), which cancels it."""

    async def exchange() -> httpx.Response:
        https = url.startswith("https://")
        async with httpx.AsyncClient(verify=ssl_context(http) if https else True, timeout=timeout) as client:
            response = await client.post(url, content=body, headers={**headers, **auth_headers(http)})
            await response.aread()
            return response

    async def bounded() -> httpx.Response:
        try:
            return await asyncio.wait_for(exchange(), timeout)
        except TimeoutError:
            raise TimeoutError(f"no whole answer within {timeout:g} s") from None

    return asyncio.run(bounded())


def outcome_of(response: httpx.Response) -> Outcome:
    """Delivered on 2xx; like Alertmanager, server errors and throttling may pass on a retry, other
    client errors will not; a Retry-After is passed on (router/notify/retry.py)."""
    if response.is_success:
        return Outcome(True, detail=f"HTTP {response.status_code}")
    code = response.status_code
    retryable = code >= 500 or code in (408, 429)
    return Outcome(False, retryable, f"HTTP {code}", retry_after(response.headers.get("Retry-After")))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a Retry-After header asks to wait (RFC 9110: delay-seconds or an HTTP date), None when
    absent or unreadable (then the backoff alone decides)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def failure_of(error: Exception) -> Outcome:
    """A request that got no answer: retryable (the server may be back, the network may heal)."""
    return Outcome(False, True, f"{type(error).__name__}: {error}")


def deliver(url: str, body: bytes, headers: dict[str, str], timeout: float, http=None) -> tuple[Outcome, str]:
    """POST `body` as an HTTP channel sends: what the attempt came to, and the text the server answered
    ("" when none came)."""
    try:
        response = post(url, body, headers, timeout, http)
    except (httpx.HTTPError, OSError, ssl.SSLError) as error:
        return failure_of(error), ""
    return outcome_of(response), response.text
