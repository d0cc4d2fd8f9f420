"""The router's configuration (YAML): routing tree, receivers, organisations, escalations, inhibitions.

Parsed strictly and validated at load, every error listed with its path and an exact message (undefined
receiver, bad matcher, zero interval...), then trusted. Routes have Alertmanager's semantics: a child
inherits group_by, the intervals and the escalation policy of its parent; the first matching child wins
unless it says `continue: true`; an alert no child matches goes to the parent's receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from tocsin.durations import Duration, DurationOrZero
from tocsin.organisations import Organisation, Organisations
from tocsin.router.matchers import Matcher, MatcherError, parse_matcher
from tocsin.validation import ConfigErrors, StrictModel, read_yaml, validate_collecting

# The root route's defaults, as Alertmanager's (30s, 5m, 4h); every child inherits its parent's.
DEFAULTS = {
    "group_by": ("alertname", "country"),
    "group_wait_s": 30,
    "group_interval_s": 5 * 60,
    "repeat_interval_s": 4 * 3600,
}


class RouterConfigError(ConfigErrors):
    kind = "router config"


class RouteSpec(StrictModel):
    receiver: str | None = None
    matchers: list[str] = []
    continue_: bool = Field(False, alias="continue")
    group_by: list[str] | None = None
    group_wait: DurationOrZero | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    escalation: str | None = None
    routes: list[RouteSpec] = []


def _readable(path: str) -> str:
    try:
        Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    return path


# A file the router reads a secret or a certificate from: checked at load, read again at each send (so
# a rotated credential or certificate is picked up without a restart, as Prometheus reads its own).
ReadableFile = Annotated[str, AfterValidator(_readable)]


class TLSConfig(StrictModel):
    ca_file: ReadableFile | None = None  # the CAs to trust for the server (default: the system's)
    cert_file: ReadableFile | None = None  # a client certificate (mutual TLS), with its key_file
    key_file: ReadableFile | None = None

    @model_validator(mode="after")
    def _pair(self) -> TLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (a client certificate and its key)")
        return self


class Authorization(StrictModel):
    type: str = Field("Bearer", pattern=r"^[A-Za-z][A-Za-z0-9-]*$")
    credentials_file: ReadableFile  # never the credentials themselves: the config is not a secret


class BasicAuth(StrictModel):
    username: str = Field(min_length=1)
    password_file: ReadableFile


class HttpConfig(StrictModel):
    """How an HTTP channel reaches its server, named and shaped as Prometheus's and Alertmanager's
    http_config: TLS (a CA, a client certificate), and one of an Authorization header or basic auth,
    their secrets read from files."""

    tls_config: TLSConfig | None = None
    authorization: Authorization | None = None
    basic_auth: BasicAuth | None = None

    @model_validator(mode="after")
    def _one_auth(self) -> HttpConfig:
        if self.authorization is not None and self.basic_auth is not None:
            raise ValueError("authorization and basic_auth: one or the other")
        return self


class Webhook(StrictModel):
    url: str = Field(pattern=r"^https?://")
    format: Literal["alertmanager", "cloudevents"] = "alertmanager"
    timeout: Duration = 10
    headers: dict[str, str] = {}
    http_config: HttpConfig | None = None


class Email(StrictModel):
    to: list[str] = Field(min_length=1)
    sender: str = Field(alias="from")
    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None  # the password is read from this environment variable, never the file
    timeout: Duration = 10


class FileChannel(StrictModel):
    path: str  # "-" for standard output


class Chat(StrictModel):
    # An apprise URL (tgram://, matrix://, slack://, mmost://, rocket://, json://...): its scheme names the
    # service. It usually holds a token: never written to a log or an error (router/notify/chat.py).
    url: str
    timeout: Duration = 10


class AlertmanagerChannel(StrictModel):
    # An Alertmanager's base URL (http://alertmanager:9093): tocsin posts to {url}/api/v2/alerts.
    url: str = Field(pattern=r"^https?://")
    timeout: Duration = 10
    # Firing alerts are re-sent this often, their endsAt four intervals ahead (Prometheus's resend_delay
    # and its 4x; router/resend.py); an Alertmanager resolves one tocsin stops re-sending by itself.
    resend: Duration = 60
    headers: dict[str, str] = {}
    http_config: HttpConfig | None = None  # TLS and auth, as the webhook's (a proxy in front of it)


CHANNEL_KINDS = ("webhook", "email", "file", "chat", "alertmanager")
ONE_OF_THE_KINDS = ", ".join(CHANNEL_KINDS)


class Channel(StrictModel):
    webhook: Webhook | None = None
    email: Email | None = None
    file: FileChannel | None = None
    chat: Chat | None = None
    alertmanager: AlertmanagerChannel | None = None
    # Not written in a channel: set at load from its receiver's language and the router's external_url,
    # so that the channel's notifier writes for its reader (router.notify.notifier_for).
    _language: str = PrivateAttr("en")
    _external_url: str = PrivateAttr("")

    @property
    def kind(self) -> str:
        return next(k for k in CHANNEL_KINDS if getattr(self, k) is not None)

    @property
    def language(self) -> str:
        return self._language

    @property
    def external_url(self) -> str:
        return self._external_url


class Receiver(StrictModel):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    organisation: str
    description: str = ""
    # The language of its notifications: their text comes from router/notify/locales (notify.i18n).
    language: Literal["en", "fr"] = "en"
    # Tell it when an alert it was told of resolves (Alertmanager's send_resolved). An alert that resolved
    # before it was ever notified firing is never sent: "resolved" says nothing to whom it was not news.
    send_resolved: bool = True
    channels: list[Channel] = Field(min_length=1)


class EscalationStep(StrictModel):
    receiver: str
    after: Duration


class Escalation(StrictModel):
    steps: list[EscalationStep] = Field(min_length=1)
    repeat: Duration | None = None  # re-notify the last step's receiver this often until acknowledged


class InhibitRule(StrictModel):
    source_matchers: list[str] = Field(min_length=1)
    target_matchers: list[str] = Field(min_length=1)
    equal: list[str] = []


class Retry(StrictModel):
    attempts: int = Field(5, ge=1)
    backoff: Duration = 1
    max_backoff: Duration = 60


def _external_url(value: str) -> str:
    """The router's address as its readers reach it (the web console and the API); "" for none."""
    if value == "":
        return value
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        # Not echoed: it holds a password, and every notification would carry it.
        raise ValueError("a user or password in it would be sent in every notification")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} has a query or a fragment: the console's paths are added to it")
    return value.rstrip("/")  # https://tocsin.example.org/ and https://tocsin.example.org are one


ExternalURL = Annotated[str, AfterValidator(_external_url)]


def _alertmanager_url(value: str) -> str | None:
    """Why an alertmanager channel's URL is not an Alertmanager's base URL; None if it is."""
    parts = urlsplit(value)
    if not parts.netloc:
        return f"{value!r} has no host"
    if parts.query or parts.fragment:
        return f"{value!r} has a query or a fragment: /api/v2/alerts is added to it"
    if parts.path.rstrip("/").endswith("/api/v2/alerts") or parts.path.rstrip("/").endswith("/api/v2"):
        return f"{value!r} is an API path: give the Alertmanager's base URL; /api/v2/alerts is added to it"
    return None


class _Document(StrictModel):
    version: int = Field(ge=1)
    # Where readers open the web console and the CLI reaches the API, e.g. https://tocsin.example.org:
    # every notification links to `{external_url}/alerts/{alert id}`. Empty: no links.
    external_url: ExternalURL = ""
    route: RouteSpec
    receivers: list[Receiver] = Field(min_length=1)
    organisations: Organisations  # the core's: name, token_sha256, admin, revoked
    escalations: dict[str, Escalation] = {}
    inhibit_rules: list[InhibitRule] = []
    retry: Retry = Retry()
    # How long a resolved alert stays in the router's memory (listed, answerable) once its resolution was
    # notified; then it is archived: the ledger keeps its whole story, `tocsin ledger show` tells it.
    retention: Duration = 90 * 86_400


# ---------------------------------------------------------------------------------------------- resolved


@dataclass(frozen=True)
class Route:
    id: str  # path in the tree: "root", "root.0", "root.0.1"
    receiver: str
    matchers: tuple[Matcher, ...]
    continue_: bool
    group_by: tuple[str, ...]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int
    escalation: str | None
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class Policy:
    steps: tuple[tuple[str, int], ...]  # (receiver, seconds after the previous step)
    repeat_s: int | None


@dataclass(frozen=True)
class Inhibition:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class RouterConfig:
    route: Route
    receivers: dict[str, Receiver]
    organisations: dict[str, Organisation]
    escalations: dict[str, Policy]
    inhibitions: tuple[Inhibition, ...]
    retry_attempts: int
    retry_backoff_s: int
    retry_max_backoff_s: int
    retention_s: int = 90 * 86_400
    external_url: str = ""

    def receivers_of(self, organisation: str) -> set[str]:
        return {r.name for r in self.receivers.values() if r.organisation == organisation}


def load_router_config(path: Path | str) -> RouterConfig:
    return parse_router_config(read_yaml(path, RouterConfigError))


def parse_router_config(data: Any) -> RouterConfig:
    if not isinstance(data, dict):
        raise RouterConfigError(["<root>: the router config must be a mapping"])
    doc, errors = validate_collecting(_Document, data)
    if doc is None:
        raise RouterConfigError(errors)
    receivers: dict[str, Receiver] = {}
    for i, receiver in enumerate(doc.receivers):
        if receiver.name in receivers:
            errors.append(f"receivers.{i}.name: duplicate receiver {receiver.name!r}")
        receivers[receiver.name] = receiver
    organisations = {o.name: o for o in doc.organisations}
    for i, receiver in enumerate(doc.receivers):
        if receiver.organisation not in organisations:
            errors.append(f"receivers.{i}.organisation: undefined organisation {receiver.organisation!r}")
        for j, channel in enumerate(receiver.channels):
            kinds = [k for k in CHANNEL_KINDS if getattr(channel, k) is not None]
            if len(kinds) != 1:
                errors.append(
                    f"receivers.{i}.channels.{j}: exactly one of {ONE_OF_THE_KINDS} (got {len(kinds)})"
                )
            if channel.chat is not None:
                # apprise (0.3 s to import, 0.6 s to load its services) only for a config with a chat channel
                from tocsin.router.notify.chat import url_problem  # noqa: PLC0415

                problem = url_problem(channel.chat.url)
                if problem:
                    errors.append(f"receivers.{i}.channels.{j}.chat.url: {problem}")
            if channel.alertmanager is not None:
                problem = _alertmanager_url(channel.alertmanager.url)
                if problem:
                    errors.append(f"receivers.{i}.channels.{j}.alertmanager.url: {problem}")
            channel._language, channel._external_url = receiver.language, doc.external_url
    escalations: dict[str, Policy] = {}
    for name, spec in doc.escalations.items():
        steps = []
        for k, step in enumerate(spec.steps):
            where = f"escalations.{name}.steps.{k}"
            if step.receiver not in receivers:
                errors.append(f"{where}.receiver: undefined receiver {step.receiver!r}")
            steps.append((step.receiver, step.after))
        escalations[name] = Policy(tuple(steps), spec.repeat)
    inhibitions = []
    for i, rule in enumerate(doc.inhibit_rules):
        source = _matchers(rule.source_matchers, f"inhibit_rules.{i}.source_matchers", errors)
        target = _matchers(rule.target_matchers, f"inhibit_rules.{i}.target_matchers", errors)
        inhibitions.append(Inhibition(source, target, tuple(rule.equal)))
    if doc.route.receiver is None:
        errors.append("route.receiver: the root route needs a receiver")
    if doc.route.matchers:
        errors.append("route.matchers: the root route matches every alert; it takes no matchers")
    root_defaults = {"receiver": doc.route.receiver or "", "escalation": None, **DEFAULTS}
    route = _resolve(doc.route, "route", "root", root_defaults, receivers, escalations, errors)
    if errors:
        raise RouterConfigError(errors)
    return RouterConfig(
        route,
        receivers,
        organisations,
        escalations,
        tuple(inhibitions),
        doc.retry.attempts,
        doc.retry.backoff,
        doc.retry.max_backoff,
        doc.retention,
        doc.external_url,
    )


def _resolve(
    spec: RouteSpec, where: str, route_id: str, parent: dict, receivers, escalations, errors
) -> Route:
    receiver = spec.receiver or parent["receiver"]
    if spec.receiver is not None and spec.receiver not in receivers:
        errors.append(f"{where}.receiver: undefined receiver {spec.receiver!r}")
    if spec.escalation is not None and spec.escalation not in escalations:
        errors.append(f"{where}.escalation: undefined escalation {spec.escalation!r}")
    own = {
        "receiver": receiver,
        "group_by": tuple(spec.group_by) if spec.group_by is not None else parent["group_by"],
        "group_wait_s": _inherit(spec.group_wait, parent["group_wait_s"]),
        "group_interval_s": _inherit(spec.group_interval, parent["group_interval_s"]),
        "repeat_interval_s": _inherit(spec.repeat_interval, parent["repeat_interval_s"]),
        "escalation": spec.escalation or parent["escalation"],
    }
    children = tuple(
        _resolve(child, f"{where}.routes.{i}", f"{route_id}.{i}", own, receivers, escalations, errors)
        for i, child in enumerate(spec.routes)
    )
    return Route(
        id=route_id,
        matchers=_matchers(spec.matchers, f"{where}.matchers", errors),
        continue_=spec.continue_,
        routes=children,
        **own,
    )


def _inherit(own: int | None, inherited: int) -> int:
    return inherited if own is None else own


def _matchers(texts: list[str], where: str, errors: list) -> tuple[Matcher, ...]:
    out = []
    for i, text in enumerate(texts):
        try:
            out.append(parse_matcher(text))
        except MatcherError as error:
            errors.append(f"{where}.{i}: {error}")
    return tuple(out)
