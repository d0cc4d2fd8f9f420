"""A real OAuth 2.0 token endpoint on loopback, for the OAUTHBEARER tests: it grants the client-credentials
grant to one client (HTTP Basic), and issues unsecured JWTs (alg none) that Kafka's
OAuthBearerUnsecuredValidatorCallbackHandler accepts: `sub` the client id, `scope`, `iat` and `exp`."""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _part(claims: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")


class TokenEndpoint:
    def __init__(self, client_id: str, client_secret: str, lifetime_s: int = 3600):
        self.client_id, self.client_secret, self.lifetime_s = client_id, client_secret, lifetime_s
        self.requests: list[dict] = []  # each: the form and the Authorization header
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                endpoint.requests.append({"form": form, "authorization": self.headers["Authorization"]})
                status, answer = endpoint.answer(self.headers["Authorization"], form)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/oauth2/token"

    def answer(self, authorization: str | None, form: dict) -> tuple[int, dict]:
        # RFC 6749 section 2.3.1: base64 of the form-encoded id, a colon, the form-encoded secret.
        scheme, _, encoded = (authorization or "").partition(" ")
        pair = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        client_id, _, secret = (urllib.parse.unquote_plus(part) for part in pair.partition(":"))
        if (client_id, secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "unknown client or bad secret"}
        if form.get("grant_type") != ["client_credentials"]:
            return 400, {"error": "unsupported_grant_type"}
        now = int(time.time())
        claims = {"sub": self.client_id, "iat": now, "exp": now + self.lifetime_s}
        if "scope" in form:
            claims["scope"] = form["scope"][0]
        token = f"{_part({'alg': 'none'})}.{_part(claims)}."
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime_s}

    def __enter__(self) -> TokenEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
