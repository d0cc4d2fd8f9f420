"""The console's pages: sign in with the organisation's token, its alerts, an alert and its answers,
silences for admins. Server-rendered (Jinja2), no scripts, nothing fetched from elsewhere.

Every answer goes through the router's own methods (`Router.respond`, `create_silence`,
`expire_silence`), the path the API takes, so it lands in the ledger the same way. Sessions are signed
cookies (HttpOnly, SameSite=Strict) that expire; every form carries the session's CSRF token, and a POST
without it is refused (403).
"""

from __future__ import annotations

import math
import secrets
import time
from hmac import compare_digest
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.middleware.sessions import SessionMiddleware

from tocsin.framework import risk_factor_title
from tocsin.organisations import Organisation, find_by_token
from tocsin.router.console.i18n import LANGUAGES, negotiate, translations
from tocsin.router.console.map import map_svg
from tocsin.router.console.plot import series_svg
from tocsin.router.console.story import story_line
from tocsin.router.service import Forbidden, Invalid, Router
from tocsin.web.app import Problem, read_body

SESSION_COOKIE = "tocsin_console"
FORM_LIMIT = 32 * 1024
SEVERITIES = ("INFO", "WATCH", "WARNING", "CRITICAL")
STATUSES = ("FIRING", "UPDATED", "RESOLVED")
STORY_KINDS = ("alert.received", "alert.routed", "alert.muted", "notification", "escalation", "response",
               "comment", "alert.archived")  # fmt: skip
ANSWERS = ("acknowledged", "action_taken", "declined", "referred", "comment")
ANSWER_FIELDS = ("kind", "responder", "description", "reason", "referred_to")
FILTERS = ("status", "severity", "country", "risk_factor")
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    '<path d="M8 1 15 14H1z" fill="#b00020"/><rect x="7" y="5" width="2" height="5" fill="#fff"/></svg>'
)


def _environments() -> dict[str, Environment]:
    envs = {}
    for language in LANGUAGES:
        env = Environment(
            loader=PackageLoader("tocsin.router.console", "templates"),
            autoescape=select_autoescape(),
            extensions=["jinja2.ext.i18n"],
        )
        env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
        env.filters["when"] = _when
        env.filters["quote"] = lambda value: quote(str(value), safe="")
        envs[language] = env
    return envs


def _when(seconds: float | int | None, millis: bool = False) -> str:
    if seconds is None:
        return ""
    value = seconds / 1000 if millis else seconds
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(value))


def _waited(seconds: float) -> str:
    hours, minutes = int(seconds // 3600), int(seconds % 3600 // 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def mount_console(app: FastAPI, router: Router, secret: str, max_age_s: int, https_only: bool) -> None:
    """Add the console's pages and its session cookie to the router's app."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret,
        session_cookie=SESSION_COOKIE,
        max_age=max_age_s,
        same_site="strict",
        https_only=https_only,
    )
    envs = _environments()

    def language(request: Request) -> str:
        return negotiate(request.session.get("lang"), request.headers.get("accept-language"))

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        lang = language(request)
        context.setdefault("org", None)
        html = (
            envs[lang]
            .get_template(name)
            .render(lang=lang, csrf=_csrf(request), languages=LANGUAGES, path=request.url.path, **context)
        )
        return HTMLResponse(html, status_code=status)

    def signed_in(request: Request) -> Organisation | None:
        name, since = request.session.get("org"), request.session.get("since", 0)
        org = router.config.organisations.get(name) if name else None
        if org is None or org.revoked or time.time() - since > max_age_s:
            request.session.pop("org", None)
            return None
        return org

    async def form(request: Request) -> dict[str, str]:
        raw = await read_body(request, FORM_LIMIT, 30)
        try:
            fields = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        except UnicodeDecodeError:
            raise Problem(400, ["body: not UTF-8"]) from None
        if not compare_digest(fields.get("csrf", ""), request.session.get("csrf", "\0")):
            raise Problem(403, ["csrf: this form is stale or was not sent from the console; reload the page"])
        return fields

    def to(path: str) -> RedirectResponse:
        return RedirectResponse(path, status_code=303)

    def to_login(request: Request) -> RedirectResponse:
        if request.method != "GET":  # a form of an expired session: back to the start, not to a POST
            return to("/login")
        return to(f"/login?next={quote(request.url.path, safe='')}")

    @app.get("/login", include_in_schema=False)
    async def login_page(request: Request):
        return page(request, "login.html", next=_local(request.query_params.get("next")))

    @app.post("/login", include_in_schema=False)
    async def login(request: Request):
        fields = await form(request)
        org = find_by_token(router.config.organisations.values(), fields.get("token", "").strip() or "\0")
        if org is None or org.revoked:
            message = "revoked" if org is not None else "unknown"
            return page(request, "login.html", status=401, error=message, next=_local(fields.get("next")))
        request.session.clear()
        request.session.update(org=org.name, since=time.time(), csrf=secrets.token_urlsafe(32))
        if fields.get("lang") in LANGUAGES:
            request.session["lang"] = fields["lang"]
        return to(_local(fields.get("next")))

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request):
        await form(request)
        request.session.clear()
        return to("/login")

    @app.post("/language", include_in_schema=False)
    async def choose_language(request: Request):
        fields = await form(request)
        if fields.get("lang") in LANGUAGES:
            request.session["lang"] = fields["lang"]
        return to(_local(fields.get("back")))

    @app.get("/", include_in_schema=False)
    async def alerts(request: Request):
        org = signed_in(request)
        if org is None:
            return to_login(request)
        rows = await run_in_threadpool(router.visible, org.name)
        waiting = _waiting(router, rows)
        chosen = {
            k: request.query_params.get(k, "") for k in ("status", "severity", "country", "risk_factor")
        }
        shown = sorted(_filtered(rows, chosen), key=lambda a: (a["last_updated"], a["id"]), reverse=True)
        return page(
            request,
            "alerts.html",
            org=org,
            alerts=shown,
            waiting=waiting,
            longest=_waited(max(waiting.values())) if waiting else "",
            waited={a: _waited(s) for a, s in waiting.items()},
            chosen=chosen,
            severities=SEVERITIES,
            statuses=STATUSES,
            countries=sorted({a["country"] for a in rows}),
            risk_factors=sorted({rf for a in rows for rf in a["risk_factors"]}),
        )

    @app.get("/alerts/{alert_id:path}", include_in_schema=False)
    async def alert_page(request: Request, alert_id: str):
        org = signed_in(request)
        if org is None:
            return to_login(request)
        found = [a for a in await run_in_threadpool(router.visible, org.name) if a["id"] == alert_id]
        if not found:  # not routed to this organisation, or no such alert: the same answer
            return page(request, "missing.html", status=404, org=org)
        alert = found[0]
        lang = language(request)
        with router.lock:
            entries = list(router.state.story.get(alert_id, ()))
        return page(
            request,
            "alert.html",
            org=org,
            alert=alert,
            story=[
                {
                    "at": e.at,
                    "kind": e.kind,
                    "actor": e.actor,
                    "text": story_line(e, translations(lang).gettext),
                }
                for e in entries
            ],
            plot=_plot(alert, entries, lang),
            map=map_svg(
                alert["country"], alert["country"] + (f" / {alert['region']}" if alert["region"] else "")
            ),
            risk_factors=[risk_factor_title(n, lang) for n in alert["risk_factors"]],
            waited=_waiting(router, [alert]).get(alert_id),
            receivers=sorted(router.config.receivers),
            answers=ANSWERS,
            error=request.query_params.get("error"),
            done=request.query_params.get("done"),
        )

    @app.post("/alerts/{alert_id:path}/answer", include_in_schema=False)
    async def answer(request: Request, alert_id: str):
        org = signed_in(request)
        if org is None:
            return to_login(request)
        fields = await form(request)
        body = {
            k: fields[k]
            for k in ("kind", "responder", "description", "reason", "referred_to")
            if fields.get(k)
        }
        back = f"/alerts/{quote(alert_id, safe='')}"
        try:
            await run_in_threadpool(router.respond, org.name, alert_id, body)
        except Forbidden:
            return page(request, "missing.html", status=404, org=org)
        except Invalid as error:
            return to(f"{back}?error={quote('; '.join(error.errors))}")
        return to(f"{back}?done={quote(body.get('kind', ''))}")

    @app.get("/silences", include_in_schema=False)
    async def silences(request: Request):
        org = signed_in(request)
        if org is None:
            return to_login(request)
        if not org.admin:
            return page(request, "forbidden.html", status=403, org=org)
        now = time.time()
        listed = sorted(router.state.silences.values(), key=lambda s: s.starts_at, reverse=True)
        return page(
            request,
            "silences.html",
            org=org,
            silences=[(s, s.starts_at <= now < s.ends_at) for s in listed],
            error=request.query_params.get("error"),
        )

    async def admin_form(request: Request) -> tuple[Organisation, dict[str, str]] | Response:
        """A signed-in admin's form (CSRF checked), or the answer to give instead."""
        org = signed_in(request)
        if org is None:
            return to_login(request)
        fields = await form(request)
        if not org.admin:
            return page(request, "forbidden.html", status=403, org=org)
        return org, fields

    @app.post("/silences", include_in_schema=False)
    async def create_silence(request: Request):
        found = await admin_form(request)
        if isinstance(found, Response):
            return found
        org, fields = found
        try:
            hours = float(fields.get("hours") or 0)
        except ValueError:
            hours = math.nan
        if not math.isfinite(hours) or hours < 0:
            return to(f"/silences?error={quote('hours: a number of hours, 0 or more')}")
        body = {
            "matchers": [m.strip() for m in fields.get("matchers", "").splitlines() if m.strip()],
            "author": fields.get("author", ""),
            "reason": fields.get("reason", ""),
            "duration_s": hours * 3600,
        }
        try:
            await run_in_threadpool(router.create_silence, org.name, body)
        except Invalid as error:
            return to(f"/silences?error={quote('; '.join(error.errors))}")
        return to("/silences")

    @app.post("/silences/{silence_id}/expire", include_in_schema=False)
    async def expire_silence(request: Request, silence_id: str):
        found = await admin_form(request)
        if isinstance(found, Response):
            return found
        org, fields = found
        try:
            await run_in_threadpool(
                router.expire_silence, org.name, silence_id, fields.get("author") or org.name
            )
        except KeyError:
            return to(f"/silences?error={quote('silence: no such silence')}")
        return to("/silences")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon():
        return Response(FAVICON, media_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"})

    @app.get("/console.css", include_in_schema=False)
    async def stylesheet():
        css = envs["en"].loader.get_source(envs["en"], "console.css")[0]  # type: ignore[union-attr]
        return Response(css, media_type="text/css", headers={"Cache-Control": "max-age=3600"})


def _plot(alert: dict, entries: list, language: str) -> str:
    """The rule's first value at each event of the alert, against its threshold ('' without values)."""
    events = [
        {"window_end": a["window_end"], "value": a["values"][0]["value"], "status": a["status"]}
        for a in (e.payload["alert"] for e in entries if e.kind == "alert.received")
        if a["values"]
    ]
    if not events or not alert["values"]:
        return ""
    name, threshold = alert["values"][0]["name"], alert["values"][0]["threshold"]
    gettext = translations(language).gettext
    labels = {
        "title": gettext("%(name)s at each event of this alert") % {"name": name},
        "threshold": gettext("Threshold"),
        "window": gettext("This window"),
    }
    return series_svg(events, name, threshold, (alert["window_start"], alert["window_end"]), labels)


def _local(path: str | None) -> str:
    """A path on this site to go back to, never another site's address (an open redirect)."""
    return path if path and path.startswith("/") and not path.startswith(("//", "/\\")) else "/"


def _csrf(request: Request) -> str:
    return request.session.setdefault("csrf", secrets.token_urlsafe(32))


def _waiting(router: Router, alerts: list[dict]) -> dict[str, float]:
    """Seconds each alert has waited for an answer: notified, firing, nobody has answered."""
    now = time.time()
    with router.lock:
        first = dict(router.state.first_notified)
    return {
        a["id"]: now - first[a["id"]]
        for a in alerts
        if a["id"] in first and a["status"] != "RESOLVED" and not a.get("acknowledged")
    }


def _filtered(alerts: list[dict], chosen: dict[str, str]):
    for a in alerts:
        if chosen["status"] and a["status"] != chosen["status"]:
            continue
        if chosen["severity"] and a["severity"] != chosen["severity"]:
            continue
        if chosen["country"] and a["country"] != chosen["country"]:
            continue
        if chosen["risk_factor"] and not any(str(rf) == chosen["risk_factor"] for rf in a["risk_factors"]):
            continue
        yield a
