"""Alertmanager's API v2 on the router, mounted at /api/v2 (router/api.py): what amtool, Grafana's
Alertmanager data source and Karma call, with the organisation's bearer token as the rest of the API.

    GET /status, /receivers          the instance, the organisation's receivers
    GET /alerts, /alerts/groups      the firing alerts routed to the organisation (filter, active,
                                     silenced, inhibited, receiver as Alertmanager takes them)
    GET /silences, /silence/{id}     every silence (as GET /v1/silences)
    POST /silences                   create one (or replace one: its id), admin only
    DELETE /silence/{id}             expire one, admin only

Silences are the router's own (Router.create_silence, expire_silence): each change is a ledger entry,
by `{organisation}/{createdBy}` (an expiry by `{organisation}/alertmanager-api`, or ?author=). An error
is Alertmanager's: its status and a JSON string saying what is wrong, on one line.
"""

from __future__ import annotations

import json
import time
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tocsin.router.alertmanager import filters, shapes
from tocsin.router.alertmanager.filters import BadQuery
from tocsin.router.inhibit import inhibited_by
from tocsin.router.notify.alertmanager import fingerprint
from tocsin.router.notify.payload import Audience
from tocsin.router.service import Invalid, Router
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import counter
from tocsin.web.app import Problem, authorise, read_body

MAX_BODY = 64 * 1024
REQUEST_TIMEOUT_S = 30.0
EXPIRED_BY = "alertmanager-api"  # the ledger's author of an expiry that names none (amtool names none)
REQUESTS = counter(
    "tocsin_router_alertmanager_api_requests_total",
    "Requests to the router's Alertmanager API v2",
    ["operation", "code"],
)


def _tocsin_version() -> str:
    try:
        return version("tocsin")
    except PackageNotFoundError:
        return "unknown"


def alertmanager_app(router: Router) -> FastAPI:
    started_at = time.time()
    app = FastAPI(title="tocsin router: Alertmanager API v2", docs_url=None, redoc_url=None, openapi_url=None)
    log = get_logger(stage="router")

    @app.middleware("http")
    async def _count(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        operation = f"{request.method} {route.path}" if route is not None else "unmatched"
        REQUESTS.labels(operation, str(response.status_code)).inc()
        return response

    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem):
        request.state.errors = [e.split(":", 1)[0] for e in problem.errors]
        return JSONResponse("; ".join(problem.errors), problem.status, headers=problem.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException):
        if error.status_code == 404:
            return JSONResponse(f"path: no such resource {request.url.path}", 404)
        if error.status_code == 405:
            allow = (error.headers or {}).get("Allow", "")
            return JSONResponse(f"method: use {allow or 'another method'}", 405, headers=error.headers)
        return JSONResponse(f"request: {error.detail}", error.status_code)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        return JSONResponse("request: " + "; ".join(str(e.get("msg")) for e in error.errors()), 400)

    def organisation(request: Request):
        org = authorise(router.config.organisations.values(), request.headers.get("authorization"))
        request.state.log = {"organisation": org.name}
        return org

    def admin(request: Request):
        org = organisation(request)
        if not org.admin:
            raise Problem(403, ["organisation: silences need an admin organisation"])
        return org

    def query(request: Request, parse):
        try:
            return parse(list(request.query_params.multi_items()))
        except BadQuery as error:
            raise Problem(400, error.errors) from None

    @app.get("/status")
    async def status(request: Request):
        org = organisation(request)
        receivers = sorted(router.config.receivers_of(org.name))
        return shapes.status(org.name, receivers, started_at, _tocsin_version())

    @app.get("/receivers")
    async def receivers(request: Request):
        org = organisation(request)
        return [{"name": r} for r in sorted(router.config.receivers_of(org.name))]

    @app.get("/alerts")
    async def alerts(request: Request):
        org = organisation(request)
        q = query(request, filters.alert_query)
        listed = await run_in_threadpool(_gettable_alerts, router, org.name, router.clock())
        return sorted((a for a in listed.values() if shapes.kept(q, a)), key=lambda a: a["fingerprint"])

    @app.get("/alerts/groups")
    async def groups(request: Request):
        org = organisation(request)
        q = query(request, filters.alert_query)
        return await run_in_threadpool(_groups, router, org.name, q, router.clock())

    @app.get("/silences")
    async def silences(request: Request):
        organisation(request)
        q = query(request, filters.silence_query)
        now = router.clock()
        listed = [shapes.gettable_silence(s, now) for s in list(router.state.silences.values())]
        return [s for s in listed if shapes.silence_kept(q, s)]

    @app.get("/silence/{silence_id}")
    async def silence(request: Request, silence_id: str):
        organisation(request)
        found = router.state.silences.get(silence_id)
        if found is None:
            raise Problem(404, [f"silence: no silence {silence_id}"])
        return shapes.gettable_silence(found, router.clock())

    @app.post("/silences")
    async def create_silence(request: Request):
        org = admin(request)
        raw = await read_body(request, MAX_BODY, REQUEST_TIMEOUT_S)
        try:
            body = json.loads(raw or b"null")
        except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
            raise Problem(400, ["body: not JSON (a postableSilence is needed)"]) from None
        try:
            replaces, create = filters.postable_silence(body, router.clock())
        except BadQuery as error:
            raise Problem(400, error.errors) from None
        silence_id = await run_in_threadpool(_create, router, org.name, replaces, create)
        log.info("silence created through the alertmanager api", organisation=org.name, silence_id=silence_id)
        return {"silenceID": silence_id}

    @app.delete("/silence/{silence_id}")
    async def expire_silence(request: Request, silence_id: str):
        org = admin(request)
        author = request.query_params.get("author") or EXPIRED_BY
        await run_in_threadpool(_expire, router, org.name, silence_id, author)
        log.info("silence expired through the alertmanager api", organisation=org.name, silence_id=silence_id)
        return JSONResponse(None, 200)

    return app


# -- the router's state, read and changed under its lock -----------------------------------------------


def _gettable_alerts(router: Router, organisation: str, now: float) -> dict[str, dict]:
    """alert id -> gettableAlert of the firing alerts routed to the organisation."""
    config = router.config
    mine = config.receivers_of(organisation)
    with router.lock:
        state = router.state
        visible = [a for a in router.visible(organisation) if a["status"] != "RESOLVED"]
        ids = {a["id"] for a in visible}
        firing = [a for a in state.alerts.values() if a["status"] != "RESOLVED"]
        silences = list(state.silences.values())
        out = {}
        for alert in visible:
            receivers = sorted(state.routed.get(alert["id"], set()) & mine)
            language = config.receivers[receivers[0]].language if receivers else "en"
            silenced = [s.id for s in silences if s.active(now) and s.matches(alert["labels"])]
            source = inhibited_by(alert, firing, config.inhibitions)
            # Alertmanager names the inhibiting alert by fingerprint; another organisation's is not named.
            inhibited = (
                [] if source is None else [fingerprint(source) if source in ids else "another-organisation"]
            )
            esc = state.escalations.get(alert["id"])
            out[alert["id"]] = shapes.gettable_alert(
                alert,
                receivers,
                silenced,
                inhibited,
                esc.level if esc is not None else 0,
                Audience(language, config.external_url),
                now,
            )
        return out


def _groups(router: Router, organisation: str, q: filters.AlertQuery, now: float) -> list[dict]:
    listed = _gettable_alerts(router, organisation, now)
    mine = router.config.receivers_of(organisation)
    out = []
    with router.lock:
        for group in sorted(router.state.groups.values(), key=lambda g: g.key):
            if group.receiver not in mine:
                continue
            alerts = [listed[a] for a in sorted(group.alerts) if a in listed and shapes.kept(q, listed[a])]
            if not alerts or (not q.muted and all(a["status"]["state"] == "suppressed" for a in alerts)):
                continue
            first = next(iter(group.alerts.values()))["labels"]
            labels = {name: first.get(name, "") for name in router.routes[group.route_id].group_by}
            out.append(shapes.alert_group(labels, group.receiver, alerts))
    return out


def _create(router: Router, organisation: str, replaces: str | None, create: dict) -> str:
    with router.lock:
        if replaces is not None:
            # Alertmanager's update: the old silence ends and the new one takes its place, both in the ledger.
            _expire(router, organisation, replaces, create["author"])
        try:
            return router.create_silence(organisation, create)["id"]
        except Invalid as error:
            raise Problem(400, error.errors) from None


def _expire(router: Router, organisation: str, silence_id: str, author: str) -> None:
    with router.lock:
        found = router.state.silences.get(silence_id)
        if found is None:
            raise Problem(404, [f"silence: no silence {silence_id}"])
        if found.ends_at <= router.clock():
            raise Problem(400, [f"silence: {silence_id} has already expired"])
        router.expire_silence(organisation, silence_id, author)
