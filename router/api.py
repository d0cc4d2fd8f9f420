"""The router's HTTP API for responders, on tocsin's web stack (`tocsin.web`): a token per organisation;
an organisation sees and answers only the alerts routed, escalated or referred to its receivers.
Silences need an organisation marked admin; a revoked organisation's token is refused (403).

    GET  /v1/alerts                       the organisation's alerts, with any answer
    POST /v1/alerts/{id}/responses        {"kind": "acknowledged"|"action_taken"|"declined"|"referred"
                                           |"comment", "responder", "description", "reason", "referred_to"}
    GET  /v1/silences                     POST /v1/silences {"matchers", "author", "reason", "duration_s"}
    DELETE /v1/silences/{id}?author=NAME
    GET  /healthz, /readyz (503 until the router has read its ledger, and while Kafka does not answer),
         /openapi.json

An alert id may hold '/' (a region's alert: `rule:ETH/Tigray:...`), as it is or percent-encoded.
"""

import json
import os
import secrets
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from tocsin.kafka.probe import KafkaProbe
from tocsin.organisations import Organisation
from tocsin.router.alertmanager.api import alertmanager_app
from tocsin.router.console.pages import mount_console
from tocsin.router.service import Forbidden, Invalid, Router
from tocsin.web.app import Problem, authorise, read_body, web_app
from tocsin.web.server import WebServer

MAX_BODY = 64 * 1024
CONSOLE_SECRET_ENV = "TOCSIN_CONSOLE_SECRET"
CONSOLE_SESSION_S = 8 * 3600  # a duty officer's shift; then sign in again
REQUEST_TIMEOUT_S = 30.0

Text = Annotated[str, Field(strict=True, max_length=10_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseIn(_Body):
    kind: Text = ""  # acknowledged, action_taken, declined, referred or comment: the router says which
    responder: Text = ""
    description: Text | None = None
    reason: Text | None = None
    referred_to: Text | None = None


class SilenceIn(_Body):
    matchers: list[Text] = []
    author: Text = ""
    reason: Text = ""
    starts_at: Annotated[float, Field(allow_inf_nan=False)] | None = None
    ends_at: Annotated[float, Field(allow_inf_nan=False)] | None = None
    duration_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0


async def _json_object(request: Request, model: type[_Body]) -> dict:
    """The body as the model validates it (only the keys given), or Problem 400/408/413."""
    raw = await read_body(request, MAX_BODY, REQUEST_TIMEOUT_S)
    try:
        body = json.loads(raw or b"{}")
    except json.JSONDecodeError as error:
        raise Problem(400, [f"body: invalid JSON: {error.msg}"]) from None
    except (RecursionError, UnicodeDecodeError):
        raise Problem(400, ["body: not JSON that can be read (nested too deeply, or not UTF-8)"]) from None
    if not isinstance(body, dict):
        raise Problem(400, ["body: a JSON object is needed"])
    try:
        return model.model_validate(body).model_dump(exclude_unset=True)
    except ValidationError as error:
        raise Problem(400, [_message(e) for e in error.errors()]) from None


def _message(error: dict) -> str:
    return f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}"


def router_app(router: Router, ready=None, console_secret: str | None = None):
    """The API (and, given a secret to sign its sessions with, the console) of a router."""
    app = web_app(
        "tocsin router",
        description="The alerts routed to an organisation, its answers, and silences.",
        ready=ready,
        access_event="router request",
    )
    app.mount("/api/v2", alertmanager_app(router))  # for amtool, Grafana, Karma (router/alertmanager)

    def organisation(request: Request) -> Organisation:
        org = authorise(router.config.organisations.values(), request.headers.get("authorization"))
        request.state.log = {"organisation": org.name}
        return org

    Org = Annotated[Organisation, Depends(organisation)]

    def admin(org: Org) -> Organisation:
        if not org.admin:
            raise Problem(403, ["organisation: silences need an admin organisation"])
        return org

    Admin = Annotated[Organisation, Depends(admin)]

    @app.get("/v1/alerts")
    async def alerts(org: Org):
        return {"alerts": await run_in_threadpool(router.visible, org.name)}

    @app.post(
        "/v1/alerts/{alert_id:path}/responses",
        status_code=201,
        openapi_extra={"requestBody": _schema(ResponseIn)},
    )
    async def respond(alert_id: str, request: Request, org: Org):
        body = await _json_object(request, ResponseIn)
        try:
            answer = await run_in_threadpool(router.respond, org.name, alert_id, body)
        except Forbidden:
            raise Problem(404, ["alert: no such alert routed to this organisation"]) from None
        except Invalid as error:
            raise Problem(400, error.errors) from None
        return JSONResponse(answer, status_code=201)

    @app.get("/v1/silences")
    async def silences(org: Org):
        return {"silences": [s.__dict__ for s in router.state.silences.values()]}

    @app.post("/v1/silences", status_code=201, openapi_extra={"requestBody": _schema(SilenceIn)})
    async def create_silence(request: Request, org: Admin):
        body = await _json_object(request, SilenceIn)
        try:
            silence = await run_in_threadpool(router.create_silence, org.name, body)
        except Invalid as error:
            raise Problem(400, error.errors) from None
        return JSONResponse(silence, status_code=201)

    @app.delete("/v1/silences/{silence_id}")
    async def expire_silence(silence_id: str, org: Admin, author: str = ""):
        if not author:
            raise Problem(400, ["author: missing"])
        try:
            await run_in_threadpool(router.expire_silence, org.name, silence_id, author)
        except KeyError:
            raise Problem(404, ["silence: no such silence"]) from None
        return {"expired": silence_id}

    if console_secret:
        mount_console(app, router, console_secret, CONSOLE_SESSION_S, https_only=_https(router))
    return app


def _https(router: Router) -> bool:
    return str(getattr(router.config, "external_url", "") or "").startswith("https://")


def _schema(model: type[BaseModel]) -> dict:
    return {"content": {"application/json": {"schema": model.model_json_schema()}}, "required": True}


class RouterAPI(WebServer):
    """The API served on host:port (0: a free port); the socket is bound here, served from start()."""

    def __init__(self, router: Router, host: str = "127.0.0.1", port: int = 0, console: bool = True):
        self.router = router
        # The console's sessions are signed with TOCSIN_CONSOLE_SECRET (the same on every replica);
        # without it, a key of this process (sessions end when it restarts).
        secret = (os.environ.get(CONSOLE_SECRET_ENV) or secrets.token_urlsafe(32)) if console else None
        probe = KafkaProbe(router.client)

        def ready() -> list[str]:
            if not router.started:
                return ["router: still reading its ledger"]
            return probe()

        super().__init__(router_app(router, ready, secret), host, port, name="router-api")
