"""What every tocsin web app shares, on FastAPI: errors as `{"errors": [...]}`, one bearer-token check,
one way to read a body (size and time bounded), access logs with structlog, liveness and readiness.

    app = web_app("tocsin intake", ready=kafka_probe, requests=REQUESTS)
    @app.post("/v1/reports")
    async def reports(request: Request): ...

`/healthz` says the process answers; `/readyz` says it can do its job (503 with the reasons while, say,
Kafka does not answer), for a load balancer or an orchestrator's probe. The OpenAPI document is served at
`/openapi.json`; no docs page, which would load scripts from the internet.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from tocsin.organisations import Organisation, bearer_token, find_by_token

log = structlog.get_logger("tocsin.web")

DRAIN_BYTES = 4 * 1024 * 1024
DRAIN_S = 2.0


class Problem(Exception):
    """An answer other than success: its status, every error ('<field>: <message>'), extra headers."""

    def __init__(self, status: int, errors: list[str], headers: dict[str, str] | None = None):
        self.status = status
        self.errors = errors
        self.headers = headers or {}
        super().__init__(f"{status}: {'; '.join(errors)}")


def authorise(organisations: Iterable[Organisation], authorization: str | None) -> Organisation:
    """The organisation of an `Authorization: Bearer` header; Problem 401 (none or unknown) or 403
    (revoked). Every configured digest is compared, in constant time (`find_by_token`)."""
    token = bearer_token(authorization)
    if token is None:
        raise Problem(401, ["authorization: a bearer token is required"], {"WWW-Authenticate": "Bearer"})
    org = find_by_token(organisations, token)
    if org is None:
        raise Problem(401, ["authorization: unknown token"], {"WWW-Authenticate": "Bearer"})
    if org.revoked:
        raise Problem(403, ["authorization: this token has been revoked"])
    return org


async def read_body(request: Request, limit: int, timeout: float, require_length: bool = False) -> bytes:
    """The request's body, at most `limit` bytes, all of it within `timeout` seconds.

    A declared length over the limit is refused (413) before the body is read; what the client still
    sends is read and discarded (bounded), since closing on unread data makes the kernel send a reset
    that can destroy the answer. `require_length`: a body without Content-Length (chunked) is 411.
    h11 has already refused malformed or conflicting lengths with a 400."""
    declared = request.headers.get("content-length")
    if require_length and declared is None:
        raise Problem(411, ["content-length: required (chunked bodies are not accepted)"])
    if declared is not None and int(declared) > limit:
        if int(declared) <= DRAIN_BYTES:
            await _drain(request)
        raise Problem(413, [f"body: {int(declared)} bytes is more than the limit of {limit}"])
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Problem(413, [f"body: more than the limit of {limit} bytes"])
                chunks.append(chunk)
    except TimeoutError:
        raise Problem(408, [f"body: not received within {timeout:g} s"]) from None
    except ClientDisconnect:  # or a body h11 could not parse (a bad chunk): the parser has answered 400
        raise Problem(400, ["body: the connection ended before the body did"]) from None
    return b"".join(chunks)


async def _drain(request: Request) -> None:
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in request.stream():
                pass
    except TimeoutError:
        pass


def answer(status: int, errors: list[str], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=status, headers=headers)


def web_app(
    title: str,
    *,
    description: str = "",
    ready: Callable[[], list[str]] | None = None,
    requests=None,
    access_event: str = "http request",
) -> FastAPI:
    """A FastAPI app with tocsin's errors, access log, /healthz and /readyz.

    `ready()` returns what keeps the app from doing its job (empty: ready); it may block (it runs in a
    worker thread). `requests`: a prometheus Counter labelled by status, counted before the answer
    leaves so that whoever got the answer sees it counted. `access_event`: the access log's event."""
    app = FastAPI(title=title, description=description, docs_url=None, redoc_url=None)
    app.add_middleware(_AccessLog, requests=requests, event=access_event)

    @app.exception_handler(Problem)
    async def _problem(request: Request, problem: Problem):
        request.state.errors = [e.split(":", 1)[0] for e in problem.errors]  # field paths only
        return answer(problem.status, problem.errors, problem.headers)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException):
        if error.status_code == 404:
            return answer(404, [f"path: no such resource {request.url.path}"])
        if error.status_code == 405:
            allow = (error.headers or {}).get("Allow", "")
            return answer(405, [f"method: use {allow or 'another method'}"], error.headers)
        return answer(error.status_code, [f"request: {error.detail}"], error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError):
        return answer(400, [_message(e) for e in error.errors()])

    @app.get("/healthz", include_in_schema=False)
    async def _healthz():
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def _readyz():
        problems = await run_in_threadpool(ready) if ready is not None else []
        if problems:
            return answer(503, problems)
        return {"status": "ready"}

    return app


def _message(error: dict) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
    return f"{where or 'body'}: {error.get('msg', 'invalid')}"


class _AccessLog:
    """Pure ASGI middleware: one structlog line per request (method, path, status, ms, and what the
    handler put in request.state.log), and the request counter."""

    def __init__(self, app, requests=None, event: str = "http request"):
        self.app = app
        self.requests = requests
        self.event = event

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.monotonic()
        status = {"started": False}
        state = scope.setdefault("state", {})

        async def sending(message):
            if message["type"] == "http.response.start":
                status["started"] = True
                if self.requests is not None:
                    self.requests.labels(str(message["status"])).inc()
                fields = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": message["status"],
                    "ms": int((time.monotonic() - started) * 1000),
                    **state.get("log", {}),
                }
                if "errors" in state:
                    fields["errors"] = state["errors"]
                log.info(self.event, **fields)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            # Answered here, not re-raised: the server would log a traceback, and a traceback can print
            # local variables, which may hold a reporter's identity.
            log.error("request failed", path=scope["path"], error=type(error).__name__)
            if status["started"]:
                return
            body = b'{"errors": ["server: internal error; the request was not carried out"]}'
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await sending({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})
