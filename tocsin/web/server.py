"""One HTTP server for tocsin's web apps (the intake, the router's API): uvicorn in a thread of its own.

What a hand-written server got wrong, uvicorn and h11 do by design: a malformed request line, a
`Content-Length: -1` or `abc`, two lengths that disagree each get a 400 from the parser, before any app
code runs; connections are handled by one event loop rather than a thread each, so hundreds at once are
answered; past `limit_concurrency` connections or requests a client gets a 503 at once instead of
waiting in the listen backlog for nothing. What uvicorn leaves open, a client that opens a connection
and never finishes its request line and headers (it only times out idle keep-alive connections), is
closed here after `request_timeout` with a 408 (`_DeadlineProtocol`); a body that does not arrive in
that time gets a 408 from `tocsin.web.app`.

The socket is bound when the server is made, so a taken port fails there (OSError) and port 0 gives a
free port that `port` and `url` report before anything is served.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import time

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from tocsin.telemetry.metrics import counter

REQUEST_TIMEOUT_S = 30.0
LIMIT_CONCURRENCY = 1000  # connections and requests in progress; past it, a 503 at once
KEEP_ALIVE_S = 5
LINGER_S = 2.0  # how long a refused client may go on sending before its connection is closed


def raw_refusal(status: str, error: str) -> bytes:
    """A whole answer written by the server itself, before any app (a request the parser refused, one
    that did not arrive in time), with its reason in the JSON every refusal carries; the connection
    closes after it."""
    body = json.dumps({"errors": [f"request: {error}"]}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class _DeadlineProtocol(H11Protocol):
    """h11's protocol with a deadline for each request's line and headers, from the moment the
    connection opens or the previous answer is complete: a slow or stalled client is answered 408 and
    closed instead of holding its connection forever."""

    request_timeout = REQUEST_TIMEOUT_S

    _lingering: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.request_timeout, self._expired)

    def _disarm(self) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._deadline = None

    def handle_events(self) -> None:
        super().handle_events()
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()  # the headers are in: the app's own time limits take over

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this keep-alive connection gets its own deadline

    def connection_lost(self, exc) -> None:
        self._disarm()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is None:
            super().data_received(data)
        # else: the rest of a refused request, read and dropped (see _linger)

    def send_400_response(self, msg: str) -> None:
        self.transport.write(raw_refusal("400 Bad Request", msg.rstrip(".").lower()))
        self._linger()
        if self.cycle is not None:
            # A body the parser refused mid-way (a bad chunk): the client has its 400 and the connection
            # is closing, so the app, still reading, must see a disconnect rather than answer again.
            self.cycle.disconnected = True
            self.cycle.message_event.set()

    def _linger(self) -> None:
        """Close after a refusal the way web servers do (a "lingering close"): our side is shut for
        writing, and what the client still sends of its refused request (the rest of a 70 KB request
        line) is read and dropped until it closes, or LINGER_S at most. Closing at once with unread
        input makes the kernel answer it with a reset, which can destroy the 400 before the client
        reads it."""
        self._disarm()
        self._unset_keepalive_if_required()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self._lingering = self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing() or (self.cycle is not None and not self.cycle.response_complete):
            return
        self.transport.write(
            raw_refusal("408 Request Timeout", f"not received within {self.request_timeout:g} s")
        )
        self._linger()


REFUSED = counter(
    "tocsin_http_refused_total",
    "Requests the HTTP server answered itself, before any app: malformed (400), over the limit (503)",
    ["reason"],
)
_REFUSALS = {"Invalid HTTP request received.": "malformed", "Exceeded concurrency limit.": "over_limit"}


class _CountRefusals(logging.Filter):
    """uvicorn logs a warning for every malformed request and every 503 over the limit: a client can
    fill the log with them. They are counted instead (tocsin_http_refused_total), not logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        reason = _REFUSALS.get(record.getMessage())
        if reason is None:
            return True
        REFUSED.labels(reason).inc()
        return False


class WebServer:
    """An ASGI app served on host:port by uvicorn in a daemon thread: start(), url, stop(), wait()."""

    def __init__(
        self,
        app,
        host: str,
        port: int,
        *,
        name: str,
        request_timeout: float = REQUEST_TIMEOUT_S,
        limit_concurrency: int = LIMIT_CONCURRENCY,
    ):
        self.host = host
        self.name = name
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.socket(family, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError:
            self._socket.close()
            raise
        protocol = type("DeadlineProtocol", (_DeadlineProtocol,), {"request_timeout": request_timeout})
        config = uvicorn.Config(
            app,
            http=protocol,
            lifespan="off",
            log_config=None,  # requests are logged by the app with structlog (tocsin.web.app)
            access_log=False,
            server_header=False,
            limit_concurrency=limit_concurrency,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=5,
        )
        # uvicorn's own lines (started, stopping) are routine: kept out of the log unless they warn.
        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.setLevel(logging.WARNING)
        if not any(isinstance(f, _CountRefusals) for f in uvicorn_log.filters):
            uvicorn_log.addFilter(_CountRefusals())
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> WebServer:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        return self

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def wait(self) -> None:
        """Block until the server stops (KeyboardInterrupt ends the wait)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
