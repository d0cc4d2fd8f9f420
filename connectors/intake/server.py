"""The HTTP side: `POST /v1/reports` checked, parsed, pseudonymised, published, then answered.

On tocsin's one web stack (`tocsin.web`): the token check, bounded body reads, access logs, `/healthz`
and `/readyz` (503 while Kafka does not answer), and the server's limits (a 408 for a request that does
not arrive in `request_timeout`, a 503 past `max_connections`) are shared with the router's API.
"""

from __future__ import annotations

import math

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from tocsin.connectors.intake.checks import RateLimiter, authenticate
from tocsin.connectors.intake.config import IntakeConfig
from tocsin.connectors.intake.model import BadRequest, ReportIn, parse_report
from tocsin.connectors.intake.publish import BrokerUnavailable, Publisher
from tocsin.connectors.intake.record import to_record
from tocsin.kafka.probe import KafkaProbe
from tocsin.serde.avro import default_registry, encode
from tocsin.telemetry.metrics import counter
from tocsin.web.app import Problem, read_body, web_app
from tocsin.web.server import WebServer

log = structlog.get_logger("tocsin.intake")

REQUESTS = counter("tocsin_intake_requests_total", "Intake HTTP requests by response status", ["status"])
RECORDS = counter("tocsin_intake_records_total", "Incident reports acknowledged by Kafka and accepted")

REPORTS_PATH = "/v1/reports"
HEALTH_PATH = "/healthz"
# Answers that leave part of a request unread close the connection: what follows is not a request.
CLOSE = {"Connection": "close"}


def intake_app(config: IntakeConfig, publisher: Publisher, ready=None):
    """The intake's ASGI app: one route, `POST /v1/reports`."""
    app = web_app(
        "tocsin intake",
        description="Incident reports from civil-society organisations and field monitors.",
        ready=ready,
        requests=REQUESTS,
        access_event="intake request",
    )
    limiter = RateLimiter(config.rate_per_second, config.burst)
    schema = {"content": {"application/json": {"schema": ReportIn.model_json_schema()}}, "required": True}

    @app.post(
        REPORTS_PATH,
        status_code=202,
        openapi_extra={"requestBody": schema},
        responses={202: {"description": "stored in Kafka; the record id"}},
    )
    async def reports(request: Request):
        organisation, digest = authenticate(config, request.headers.get("authorization"))
        request.state.log = {"organisation": organisation}
        wait = limiter.acquire(digest)
        if wait:
            retry = max(1, math.ceil(wait))
            raise Problem(
                429, [f"rate: too many requests; retry after {retry} s"], {"Retry-After": str(retry)}
            )
        try:
            body = await read_body(
                request, config.max_body_bytes, config.request_timeout, require_length=True
            )
        except Problem as problem:
            problem.headers.update(CLOSE)
            raise
        try:
            report = parse_report(body)
        except BadRequest as exc:
            raise Problem(400, exc.errors) from None
        record = to_record(report, organisation, config.secret.get_secret_value())
        value = encode(default_registry().get("IncidentReport"), record, topic=config.topic)
        try:
            await run_in_threadpool(publisher.publish, record["id"].encode(), value)
        except BrokerUnavailable as exc:
            log.warning("kafka did not acknowledge", organisation=organisation, error=str(exc))
            raise Problem(
                503, ["kafka: the report was not stored; send it again later"], {"Retry-After": "5"}
            ) from None
        RECORDS.inc()
        request.state.log = {"organisation": organisation, "id": record["id"]}
        return JSONResponse({"id": record["id"]}, status_code=202)

    return app


class IntakeServer(WebServer):
    def __init__(self, config: IntakeConfig, client: dict):
        self.config = config
        self.publisher = Publisher(client, config.topic, config.send_timeout)
        app = intake_app(config, self.publisher, ready=KafkaProbe(client))
        super().__init__(
            app,
            config.host,
            config.port,
            name="tocsin-intake",
            request_timeout=config.request_timeout,
            limit_concurrency=config.max_connections,
        )

    def start(self) -> IntakeServer:
        super().start()
        self.publisher.warm_up_in_background()
        log.info(
            "intake listening",
            url=self.url,
            topic=self.config.topic,
            organisations=len(self.config.organisations),
        )
        return self

    def stop(self) -> None:
        super().stop()
        self.publisher.close()


def serve(config: IntakeConfig, client: dict) -> IntakeServer:
    """Start the intake on config.host:config.port (0: a free port) and return the running server.

    `client` holds kafka-python connection settings (KafkaSettings.client_config()).
    """
    return IntakeServer(config, client).start()
