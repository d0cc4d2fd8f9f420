"""The router's HTTP API for responders: token per organisation; an organisation sees and answers only
the alerts routed, escalated or referred to its receivers. Silences need an organisation marked admin;
a revoked organisation's token is refused (403).

    GET  /v1/alerts                       the organisation's alerts, with any answer
    POST /v1/alerts/{id}/responses        {"kind": "acknowledged"|"action_taken"|"declined"|"referred"
                                           |"comment", "responder", "description", "reason", "referred_to"}
    GET  /v1/silences                     POST /v1/silences {"matchers", "author", "reason", "duration_s"}
    DELETE /v1/silences/{id}?author=NAME
    GET  /healthz
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from tocsin.organisations import Organisation, bearer_token, find_by_token
from tocsin.router.service import Forbidden, Invalid, Router

RESPONSES_PATH = re.compile(r"^/v1/alerts/(?P<id>[^/]+)/responses$")
SILENCE_PATH = re.compile(r"^/v1/silences/(?P<id>[^/]+)$")
MAX_BODY = 64 * 1024


class RouterAPI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, router: Router):
        super().__init__(address, _Handler)
        self.router = router

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def organisation(self, header: str | None) -> Organisation | None:
        """The organisation of an `Authorization: Bearer` header (a revoked one too), or None."""
        token = bearer_token(header)
        return None if token is None else find_by_token(self.router.config.organisations.values(), token)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="router-api", daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: RouterAPI

    def log_message(self, *args):  # structured logging instead of stderr lines
        pass

    def _send(self, status: int, body) -> None:
        data = json.dumps(body, sort_keys=True, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _org(self):
        org = self.server.organisation(self.headers.get("Authorization"))
        if org is None:
            self._send(401, {"errors": ["authorization: a valid 'Bearer <token>' is needed"]})
        elif org.revoked:
            self._send(403, {"errors": ["authorization: this token has been revoked"]})
            return None
        return org

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"errors": [f"body: larger than {MAX_BODY} bytes"]})
            return None
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError as error:
            self._send(400, {"errors": [f"body: invalid JSON: {error.msg}"]})
            return None
        if not isinstance(body, dict):
            self._send(400, {"errors": ["body: a JSON object is needed"]})
            return None
        return body

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path == "/healthz":
            return self._send(200, {"status": "ok"})
        org = self._org()
        if org is None:
            return None
        if path == "/v1/alerts":
            return self._send(200, {"alerts": self.server.router.visible(org.name)})
        if path == "/v1/silences":
            silences = [s.__dict__ for s in self.server.router.state.silences.values()]
            return self._send(200, {"silences": silences})
        return self._send(404, {"errors": [f"path: no {path}"]})

    def do_POST(self):  # noqa: N802
        path = urlsplit(self.path).path
        org = self._org()
        if org is None:
            return None
        body = self._body()
        if body is None:
            return None
        router = self.server.router
        found = RESPONSES_PATH.match(path)
        try:
            if found:
                return self._send(201, router.respond(org.name, found["id"], body))
            if path == "/v1/silences":
                if not org.admin:
                    return self._send(403, {"errors": ["organisation: silences need an admin organisation"]})
                return self._send(201, router.create_silence(org.name, body))
        except Forbidden:
            return self._send(404, {"errors": ["alert: no such alert routed to this organisation"]})
        except Invalid as error:
            return self._send(400, {"errors": error.errors})
        return self._send(404, {"errors": [f"path: no {path}"]})

    def do_DELETE(self):  # noqa: N802
        parts = urlsplit(self.path)
        org = self._org()
        if org is None:
            return None
        found = SILENCE_PATH.match(parts.path)
        if not found:
            return self._send(404, {"errors": [f"path: no {parts.path}"]})
        if not org.admin:
            return self._send(403, {"errors": ["organisation: silences need an admin organisation"]})
        author = (parse_qs(parts.query).get("author") or [""])[0]
        if not author:
            return self._send(400, {"errors": ["author: missing"]})
        try:
            self.server.router.expire_silence(org.name, found["id"], author)
        except KeyError:
            return self._send(404, {"errors": ["silence: no such silence"]})
        return self._send(200, {"expired": found["id"]})
