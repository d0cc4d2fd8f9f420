"""The HTTP server: `POST /v1/reports` checked, parsed, pseudonymised, published, then answered."""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

from tocsin.connectors.intake.checks import HttpError, RateLimiter, authenticate, content_length
from tocsin.connectors.intake.config import IntakeConfig
from tocsin.connectors.intake.model import BadRequest, parse_report
from tocsin.connectors.intake.publish import BrokerUnavailable, Publisher
from tocsin.connectors.intake.record import to_record
from tocsin.serde.avro import default_registry, encode
from tocsin.telemetry.metrics import counter

log = structlog.get_logger("tocsin.intake")

REQUESTS = counter("tocsin_intake_requests_total", "Intake HTTP requests by response status", ["status"])
RECORDS = counter("tocsin_intake_records_total", "Incident reports acknowledged by Kafka and accepted")

REPORTS_PATH = "/v1/reports"
HEALTH_PATH = "/healthz"
LINGER_BYTES = 4 * 1024 * 1024


class IntakeHandler(BaseHTTPRequestHandler):
    server: IntakeServer
    server_version = "tocsin-intake"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.config.request_timeout  # slow clients do not hold a thread
        self._body_read = False
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # every response is logged by _reply with structlog

    def do_GET(self) -> None:
        if self.path == HEALTH_PATH:
            self._reply(200, {"status": "ok"})
        elif self.path == REPORTS_PATH:
            self._reply(405, {"errors": ["method: use POST"]}, {"Allow": "POST"})
        else:
            self._reply(404, {"errors": [f"path: no such resource {self.path}"]})

    def do_POST(self) -> None:
        if self.path != REPORTS_PATH:
            self._reply(404, {"errors": [f"path: no such resource {self.path}"]})
            return
        started = time.monotonic()
        organisation = None
        try:
            organisation, record_id = self._accept()
        except HttpError as err:
            self._reply(err.status, {"errors": err.errors}, err.headers, organisation=organisation)
        except Exception as exc:
            # No traceback: console tracebacks can print local variables, which hold the identity.
            log.error("intake request failed", error=type(exc).__name__, organisation=organisation)
            self._reply(500, {"errors": ["server: internal error; the report was not accepted"]})
        else:
            RECORDS.inc()
            self._reply(
                202, {"id": record_id}, organisation=organisation, id=record_id, ms=_ms_since(started)
            )

    def _accept(self) -> tuple[str, str]:
        config = self.server.config
        organisation, digest = authenticate(config, self.headers.get("Authorization"))
        wait = self.server.limiter.acquire(digest)
        if wait:
            retry = max(1, math.ceil(wait))
            raise HttpError(
                429, [f"rate: too many requests; retry after {retry} s"], {"Retry-After": str(retry)}
            )
        length = content_length(self.headers, config.max_body_bytes)
        body = self.rfile.read(length)
        self._body_read = True
        if len(body) != length:
            raise HttpError(400, ["body: shorter than its Content-Length"])
        try:
            report = parse_report(body)
        except BadRequest as exc:
            raise HttpError(400, exc.errors) from None
        record = to_record(report, organisation, config.secret.get_secret_value())
        value = encode(default_registry().get("IncidentReport"), record)
        try:
            self.server.publisher.publish(record["id"].encode(), value)
        except BrokerUnavailable as exc:
            log.warning("kafka did not acknowledge", organisation=organisation, error=str(exc))
            raise HttpError(
                503, ["kafka: the report was not stored; send it again later"], {"Retry-After": "5"}
            ) from None
        return organisation, record["id"]

    def _reply(self, status: int, payload: dict, headers: dict | None = None, **context: Any) -> None:
        body = json.dumps(payload).encode()
        # Counted and logged before the answer leaves, so whoever got the answer sees the metric and log.
        REQUESTS.labels(str(status)).inc()
        fields = {"method": self.command, "path": self.path, "status": status, **context}
        if status >= 400 and "errors" in payload:
            fields["errors"] = [e.split(":", 1)[0] for e in payload["errors"]]  # field paths only
        log.info("intake request", **fields)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        if self.command == "POST" and not self._body_read:
            self._linger()

    def _linger(self) -> None:
        # Closing a socket with unread data makes the kernel send a reset, and the client can lose our
        # answer with it: half-close, then discard what it still sends, bounded in bytes and time.
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            deadline = time.monotonic() + 2.0
            discarded = 0
            while discarded < LINGER_BYTES and time.monotonic() < deadline:
                chunk = self.connection.recv(65536)
                if not chunk:
                    break
                discarded += len(chunk)
        except OSError:
            pass


def _ms_since(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


class IntakeServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, config: IntakeConfig, client: dict):
        self.config = config
        self.limiter = RateLimiter(config.rate_per_second, config.burst)
        self.publisher = Publisher(client, config.topic, config.send_timeout)
        self._thread: threading.Thread | None = None
        super().__init__((config.host, config.port), IntakeHandler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def start(self) -> IntakeServer:
        self._thread = threading.Thread(target=self.serve_forever, name="tocsin-intake", daemon=True)
        self._thread.start()
        threading.Thread(target=self.publisher.warm_up, name="tocsin-intake-kafka", daemon=True).start()
        log.info(
            "intake listening",
            url=self.url,
            topic=self.config.topic,
            organisations=len(self.config.organisations),
        )
        return self

    def wait(self) -> None:
        """Block until the server stops (KeyboardInterrupt ends the wait)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.publisher.close()


def serve(config: IntakeConfig, client: dict) -> IntakeServer:
    """Start the intake on config.host:config.port (0: a free port) and return the running server.

    `client` holds kafka-python connection settings (KafkaSettings.client_config()).
    """
    return IntakeServer(config, client).start()
