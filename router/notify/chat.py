"""Chat channel, through apprise: Telegram, Matrix, Slack, Mattermost, Rocket.Chat... by URL.

apprise sends the message; this module says whether a failure is retryable, by the webhook's rule (HTTP
5xx, 408 and 429, timeouts, refused connections), from what apprise reports of the attempt. apprise's own
retries are off: the one retry rule (retry.py) decides, and every attempt is in the ledger.

An apprise URL usually holds the service's token (tgram://BOT_TOKEN/CHAT_ID). The parts apprise hides
when it prints a URL are the secrets: they are replaced by [redacted] in every log line of apprise and
urllib3 (apprise logs an unusable URL as it was written) and in an attempt's detail, which the ledger and
the notifications topic keep; a configuration error names only the URL's scheme.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import unquote, urlsplit

import apprise
from apprise import AppriseAsset, NotifyFormat, NotifyType
from apprise.manager_plugins import NotificationManager
from apprise.result import AppriseResultStatus

from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience

REDACTED = "[redacted]"
ASSET = AppriseAsset(
    app_id="tocsin",
    app_desc="tocsin response router",
    language="en",  # its own log lines, which an attempt's detail quotes: the operator's language
    secure_logging=True,
    storage_mode="memory",  # nothing of a service's state (e.g. a Matrix login) written to disk
)
# The loggers that may write a URL's token: apprise's, and urllib3's request lines ("POST /bot<token>/...").
LOGGERS = ("apprise", "urllib3.connectionpool", "urllib3.connection")
_HTTP_ERROR = re.compile(r"error=(\d{3})\b")  # how apprise's services log an HTTP failure
_PARTS = re.compile(r"[/:@?&=#,;+\s]+")
_MIN_SECRET = 4  # shorter parts are ports and flags; replacing them would garble every log line


class ChatNotifier:
    kind = "chat"

    def __init__(self, spec, audience: Audience | None = None):
        self.spec = spec
        self.audience = audience or Audience()
        protect(spec.url)

    def render(self, message) -> bytes:
        title, body = message.chat(self.audience)
        return f"{title}\n\n{body}".encode()

    def send(self, message) -> Outcome:
        service = _service(self.spec.url)
        if service is None:  # refused at load (config); here only if apprise changed its mind
            return Outcome(False, False, f"apprise cannot use this {_scheme(self.spec.url)}:// URL")
        service.retry = 0  # one retry layer
        service.socket_connect_timeout = service.socket_read_timeout = float(self.spec.timeout)
        title, body = message.chat(self.audience)
        try:
            result = apprise.Apprise(service, asset=ASSET).notify(
                body=body, title=title, body_format=NotifyFormat.TEXT, notify_type=_notify_type(message)
            )
        except Exception as error:  # one of apprise's ~190 services: the router goes on, the layer retries
            return Outcome(False, True, redact(f"{type(error).__name__}: {error}")[:500])
        return outcome_of(result)


def outcome_of(result) -> Outcome:
    """Delivered, or failed and whether a retry could help, from apprise's result of one notify()."""
    if result:
        return Outcome(True, detail="sent")
    attempts = [attempt for service in result for attempt in service]
    said = [entry.message for attempt in attempts for entry in attempt.logs]
    said += [entry.message for entry in result.call_logs()]
    detail = redact(" ".join(said))[:500]
    if result.status == AppriseResultStatus.TIMEOUT or any(
        a.status == AppriseResultStatus.TIMEOUT for a in attempts
    ):
        return Outcome(False, True, f"timed out {detail}".strip())
    codes = _HTTP_ERROR.findall(detail)
    if codes:
        code = int(codes[-1])
        # Like the webhook (and Alertmanager): server errors and throttling may pass; other client errors
        # (a revoked token, an unknown chat) will not.
        return Outcome(False, code >= 500 or code in (408, 429), f"HTTP {code}: {detail}")
    # No HTTP answer: a refused connection, an unknown host, a service that says nothing more. A warning
    # must not be dropped on a guess: retried, within the retry layer's attempts.
    return Outcome(False, True, detail or "apprise reported a failure")


def url_problem(url: str) -> str | None:
    """Why apprise cannot send to this URL, without showing it (it may hold a token); None if it can."""
    protect(url)
    scheme = _scheme(url)
    if not scheme:
        return "not an apprise URL: it starts with its service's scheme (tgram://, matrix://, slack://, ...)"
    if scheme not in NotificationManager():
        return (
            f"apprise has no service {scheme}:// (for a plain JSON webhook: json:// or jsons://; "
            "the services: https://github.com/caronc/apprise/wiki)"
        )
    if _service(url) is None:
        return f"apprise cannot use this {scheme}:// URL: a token, host or target is malformed (not shown)"
    return None


# -- secrets ---------------------------------------------------------------------------------------


_secrets: dict[str, frozenset[str]] = {}  # URL -> its secrets
_lock = threading.Lock()


def secrets_in(url: str) -> set[str]:
    """The parts of an apprise URL apprise hides when it prints it (tokens, passwords, keys); every part
    but the scheme of a URL apprise cannot read."""
    scheme, _, rest = url.partition("://")
    service = _service(url)
    shown = _parts(service.url(privacy=True)) if service is not None else {scheme}
    try:
        password = urlsplit(url).password
    except ValueError:  # not a URL urllib reads (e.g. a bad IPv6 host): its parts are redacted anyway
        password = None
    hidden = {p for p in _parts(rest) if p not in shown} | ({unquote(password)} if password else set())
    return {url, *(p for p in hidden if len(p) >= _MIN_SECRET)}


def protect(url: str) -> None:
    """Redact this URL's secrets from the log lines of apprise and urllib3 from now on."""
    with _lock:
        for name in LOGGERS:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
        if url in _secrets:
            return
        # Every part at first: finding which parts apprise hides has it read the URL, and it logs one it
        # cannot use as it was written.
        _secrets[url] = frozenset(
            {url, *(p for p in _parts(url.partition("://")[2]) if len(p) >= _MIN_SECRET)}
        )
    found = frozenset(secrets_in(url))
    with _lock:
        _secrets[url] = found


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(set().union(*_secrets.values()), key=len, reverse=True)  # a URL before its parts
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


_FILTER = _Redacting()


def _parts(url: str) -> set[str]:
    raw = {p for p in _PARTS.split(url) if p}
    return raw | {unquote(p) for p in raw}


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else ""


def _service(url: str):
    return apprise.Apprise.instantiate(url, asset=ASSET)


def _notify_type(message) -> NotifyType:
    """The service's colour or icon: red for a critical alert, amber for the others, green resolved."""
    if message.status == "resolved":
        return NotifyType.SUCCESS
    if any(a["severity"] == "CRITICAL" and a["status"] != "RESOLVED" for a in message.alerts):
        return NotifyType.FAILURE
    return NotifyType.WARNING
