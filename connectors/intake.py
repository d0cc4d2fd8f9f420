"""HTTP intake of incident reports from civil-society organisations and field monitors.

`POST /v1/reports` takes one report as JSON (`ReportIn`), authenticates the organisation by its bearer
token, pseudonymises the reporter, optionally coarsens the coordinates, and produces an IncidentReport
to Kafka. It answers 202 with the record id only once the broker has acknowledged the record (acks=all,
idempotent producer); when Kafka does not acknowledge in time it answers 503 and the client sends again.
Nothing is buffered in the server, so stopping it at any moment loses no accepted report.

Configuration (YAML or JSON, `load_config`)::

    secret: "..."                 # pseudonym key; TOCSIN_INTAKE_SECRET overrides it (preferred)
    host: 127.0.0.1
    port: 8080                    # 0 picks a free port
    topic: tocsin.incidents.raw.v1
    max_body_bytes: 65536
    rate_per_second: 1.0          # per token: sustained rate ...
    burst: 10                     # ... and bucket size
    send_timeout_seconds: 10      # how long a request waits for Kafka's acknowledgement
    request_timeout_seconds: 30   # socket timeout of a client connection
    organisations:
      monitors-north:
        token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      old-partner:
        token_sha256: ...
        revoked: true

Only SHA-256 digests of tokens belong in the file (`issue_token()` makes a token and its digest); a
plaintext `token` is accepted for development and hashed on load.

Privacy: the reporter's identity never leaves the request handler. It is replaced by
HMAC-SHA256(secret, organisation + ":" + reporter) before the record is built, is excluded from the
model's repr, and is never logged (nor is the token). With `coarsen_km`, coordinates are snapped to the
nearest point of a grid whose spacing is `coarsen_km` north-south and east-west (`coarsen`), so every
report in the same cell gets the same point, at most about 0.71 x coarsen_km from the true one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import math
import os
import secrets
import socket
import threading
import time
import unicodedata
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any, Literal

import pycountry
import structlog
import yaml
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tocsin.serde.avro import default_registry, encode
from tocsin.telemetry.metrics import counter

log = structlog.get_logger("tocsin.intake")

REQUESTS = counter("tocsin_intake_requests_total", "Intake HTTP requests by response status", ["status"])
RECORDS = counter("tocsin_intake_records_total", "Incident reports acknowledged by Kafka and accepted")

REPORTS_PATH = "/v1/reports"
HEALTH_PATH = "/healthz"
SECRET_ENV = "TOCSIN_INTAKE_SECRET"
INT_MAX = 2**31 - 1  # Avro int
KM_PER_DEGREE = 2 * math.pi * 6371.0088 / 360  # mean Earth radius
FUTURE_SKEW = dt.timedelta(minutes=15)  # reporters' clocks and offsets are not exact
LINGER_BYTES = 4 * 1024 * 1024


# ---------------------------------------------------------------------------------------------------------
# The reporter-facing input model


def _iso_string(value: Any) -> Any:
    # pydantic would also take epoch numbers; a reporter's clock time needs its written offset.
    if not isinstance(value, str):
        raise PydanticCustomError("iso_datetime", "Input should be an ISO 8601 date-time string with offset")
    return value


def _not_future(value: dt.datetime) -> dt.datetime:
    if value > dt.datetime.now(dt.UTC) + FUTURE_SKEW:
        raise PydanticCustomError("future_datetime", "Input should not be in the future")
    return value


def _country(value: str) -> str:
    code = value.upper()
    if len(code) != 3 or pycountry.countries.get(alpha_3=code) is None:
        raise PydanticCustomError(
            "country_code", "'{value}' is not an ISO 3166-1 alpha-3 country code", {"value": value}
        )
    return code


def _language(value: str) -> str:
    code = value.lower()
    if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
        raise PydanticCustomError(
            "language_code", "'{value}' is not an ISO 639-1 language code", {"value": value}
        )
    return code


def _not_blank(value: str) -> str:
    if not value.strip():
        raise PydanticCustomError("blank", "Input should not be blank")
    return value


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
EventCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]+:\S+$", max_length=100)]
Count = Annotated[int, Field(ge=0, le=INT_MAX)]


class FatalitiesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    best: Count
    low: Count | None = None
    high: Count | None = None
    civilians: Count | None = None

    @model_validator(mode="after")
    def _ordered(self) -> FatalitiesIn:
        if self.low is not None and self.low > self.best:
            raise PydanticCustomError("fatalities_order", "low should not exceed best")
        if self.high is not None and self.high < self.best:
            raise PydanticCustomError("fatalities_order", "high should not be below best")
        if self.civilians is not None and self.civilians > self.best:
            raise PydanticCustomError("fatalities_order", "civilians should not exceed best")
        return self


class ReportIn(BaseModel):
    """One incident as a field monitor or civil-society organisation reports it."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[Text, StringConstraints(max_length=500)]
    description: Annotated[Text, StringConstraints(max_length=20_000)] | None = None
    event_time: Annotated[AwareDatetime, BeforeValidator(_iso_string), AfterValidator(_not_future)]
    country: Annotated[str, AfterValidator(_country)]
    admin1: Annotated[Text, StringConstraints(max_length=200)] | None = None
    location_name: Annotated[Text, StringConstraints(max_length=500)] | None = None
    latitude: Annotated[float, Field(ge=-90, le=90)] | None = None
    longitude: Annotated[float, Field(ge=-180, le=180)] | None = Field(None, validate_default=True)
    language: Annotated[str, AfterValidator(_language)] | None = None
    url: Annotated[HttpUrl, Field(max_length=2048)] | None = None
    event_codes: Annotated[list[EventCode], Field(max_length=50)] = []
    fatalities: FatalitiesIn | None = None
    # repr=False: the identity must not surface in a repr, a traceback or a debugger dump.
    reporter: Annotated[str, StringConstraints(max_length=500), AfterValidator(_not_blank)] = Field(
        repr=False
    )
    coarsen_km: Annotated[float, Field(gt=0, le=1000)] | None = None
    source_type: Literal["FIELD_MONITOR", "CIVIL_SOCIETY"]

    @field_validator("longitude")
    @classmethod
    def _with_latitude(cls, value: float | None, info: ValidationInfo) -> float | None:
        # Runs after latitude (field order); skipped when latitude itself failed, which has its own error.
        if "latitude" in info.data and (info.data["latitude"] is None) != (value is None):
            raise PydanticCustomError("coordinates", "latitude and longitude should be given together")
        return value


class BadRequest(ValueError):
    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


def error_list(exc: ValidationError) -> list[str]:
    """Every validation error as '<field path>: <message>' (no input values: they may identify someone)."""
    return [
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors(include_input=False, include_url=False)
    ]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_report(body: bytes) -> ReportIn:
    """Parse and validate a request body; BadRequest lists every error."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError:
        raise BadRequest(["body: invalid JSON: not UTF-8"]) from None
    except json.JSONDecodeError as exc:
        raise BadRequest([f"body: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"]) from None
    except ValueError as exc:
        raise BadRequest([f"body: invalid JSON: {exc}"]) from None
    if not isinstance(data, dict):
        raise BadRequest(["body: should be a JSON object"])
    try:
        return ReportIn.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(error_list(exc)) from None


# ---------------------------------------------------------------------------------------------------------
# Privacy and the record


def pseudonym(secret: str, organisation: str, reporter: str) -> str:
    """Keyed pseudonym of a reporter within an organisation: hex HMAC-SHA256(secret, 'org:reporter').

    Whitespace around the identity and Unicode composition do not change it; without the secret it can be
    neither reversed nor recomputed from a guessed identity.
    """
    identity = unicodedata.normalize("NFC", reporter.strip())
    message = f"{organisation}:{identity}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def coarsen(latitude: float, longitude: float, km: float) -> tuple[float, float]:
    """Snap a point to the nearest node of a grid with `km` spacing north-south and east-west.

    The east-west spacing in degrees uses the snapped latitude, not the true one, so the grid itself does
    not reveal the true latitude.
    """
    lat_step = km / KM_PER_DEGREE
    lat = max(-90.0, min(90.0, round(latitude / lat_step) * lat_step))
    lon_step = min(360.0, km / (KM_PER_DEGREE * max(math.cos(math.radians(lat)), 1e-9)))
    lon = round(longitude / lon_step) * lon_step
    lon = ((lon + 180.0) % 360.0) - 180.0 if not -180.0 <= lon <= 180.0 else lon
    return round(lat, 6), round(lon, 6)


def to_record(
    report: ReportIn,
    organisation: str,
    secret: str,
    *,
    record_uuid: uuid.UUID | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """The IncidentReport for a validated report, with the reporter pseudonymised."""
    rid = str(record_uuid or uuid.uuid4())
    attributes = {"organisation": organisation}
    latitude, longitude = report.latitude, report.longitude
    if report.coarsen_km is not None and latitude is not None and longitude is not None:
        latitude, longitude = coarsen(latitude, longitude, report.coarsen_km)
        attributes["coarsen_km"] = f"{report.coarsen_km:g}"  # consumers must know the point is approximate
    return {
        "id": f"intake:{rid}",
        "source": f"intake:{organisation}",
        "source_type": report.source_type,
        "source_record_id": rid,
        "event_time": report.event_time,
        "event_time_precision": None,
        "ingested_at": now or dt.datetime.now(dt.UTC),
        "country": report.country,
        "admin1": report.admin1,
        "location_name": report.location_name,
        "latitude": latitude,
        "longitude": longitude,
        "location_precision": None,
        "title": report.title,
        "description": report.description,
        "language": report.language,
        "url": str(report.url) if report.url is not None else None,
        "event_codes": list(report.event_codes),
        "fatalities": report.fatalities.model_dump() if report.fatalities else None,
        "reporter": pseudonym(secret, organisation, report.reporter),
        "attributes": attributes,
    }


# ---------------------------------------------------------------------------------------------------------
# Configuration and tokens


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token() -> tuple[str, str]:
    """A new random bearer token and the SHA-256 digest to put in the configuration."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


# No ':' in names, so 'org:reporter' pseudonym inputs of different organisations can never collide.
OrgName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class Organisation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = None
    token: SecretStr | None = Field(None, description="plaintext, for development only; hashed on load")
    revoked: bool = False

    @model_validator(mode="after")
    def _one_token(self) -> Organisation:
        if (self.token is None) == (self.token_sha256 is None):
            raise PydanticCustomError("token", "give exactly one of token_sha256 and token")
        if self.token is not None:
            self.token_sha256 = hash_token(self.token.get_secret_value())
            self.token = None
        return self


def _strong_secret(value: SecretStr) -> SecretStr:
    if len(value.get_secret_value()) < 32:
        raise PydanticCustomError("secret", "should have at least 32 characters (e.g. openssl rand -hex 32)")
    return value


class IntakeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    organisations: dict[OrgName, Organisation]
    secret: Annotated[SecretStr, AfterValidator(_strong_secret)]
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    topic: str = "tocsin.incidents.raw.v1"
    max_body_bytes: int = Field(64 * 1024, gt=0)
    rate_per_second: float = Field(1.0, gt=0)
    burst: int = Field(10, ge=1)
    send_timeout_seconds: float = Field(10.0, gt=0)
    request_timeout_seconds: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _distinct_tokens(self) -> IntakeConfig:
        digests = [org.token_sha256 for org in self.organisations.values()]
        if len(set(digests)) != len(digests):
            raise PydanticCustomError("token", "two organisations share a token")
        return self


def load_config(path: Path | str, **overrides: Any) -> IntakeConfig:
    """Read a YAML or JSON file; TOCSIN_INTAKE_SECRET and non-None `overrides` take precedence."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if os.environ.get(SECRET_ENV):
        data["secret"] = os.environ[SECRET_ENV]
    data.update({k: v for k, v in overrides.items() if v is not None})
    return IntakeConfig.model_validate(data)


# ---------------------------------------------------------------------------------------------------------
# Request checks


class HttpError(Exception):
    def __init__(self, status: int, errors: list[str], headers: dict[str, str] | None = None):
        self.status = status
        self.errors = errors
        self.headers = headers or {}
        super().__init__(f"{status}: {'; '.join(errors)}")


def authenticate(config: IntakeConfig, authorization: str | None) -> tuple[str, str]:
    """(organisation, token digest) for an `Authorization: Bearer` header; HttpError 401 or 403."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(401, ["authorization: a bearer token is required"], {"WWW-Authenticate": "Bearer"})
    digest = hash_token(token.strip())
    found = None
    for name, org in config.organisations.items():  # no early exit: the time taken says nothing
        if hmac.compare_digest(digest, org.token_sha256 or ""):
            found = name
    if found is None:
        raise HttpError(401, ["authorization: unknown token"], {"WWW-Authenticate": "Bearer"})
    if config.organisations[found].revoked:
        raise HttpError(403, ["authorization: this token has been revoked"])
    return found, digest


class RateLimiter:
    """A token bucket per key: `burst` requests at once, refilled at `rate` per second."""

    def __init__(self, rate: float, burst: int, clock=time.monotonic):
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take one request; 0 when allowed, else the seconds until one will be."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def content_length(headers, limit: int) -> int:
    """The declared body size, checked against `limit` before any of the body is read."""
    if "Transfer-Encoding" in headers:
        raise HttpError(411, ["content-length: required (chunked bodies are not accepted)"])
    values = headers.get_all("Content-Length") or []
    if not values:
        raise HttpError(411, ["content-length: required"])
    if len(set(values)) != 1 or not values[0].strip().isdigit():
        raise HttpError(400, ["content-length: invalid"])
    length = int(values[0])
    if length > limit:
        raise HttpError(413, [f"body: {length} bytes is more than the limit of {limit}"])
    return length


# ---------------------------------------------------------------------------------------------------------
# Kafka


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge the record in time; the report was not accepted."""


class Publisher:
    """An idempotent acks=all producer, created on first use and replaced after a failure.

    Its own timeouts equal `timeout` and the request waits a second longer, so a record the producer gives
    up on has usually expired inside it before the request answers 503. A record already in flight may
    still land after a 503; the client's retry then adds a second record with another id (at least once,
    never a 202 without the broker's acknowledgement).
    """

    def __init__(self, client: dict, topic: str, timeout: float):
        self.client = client
        self.topic = topic
        self.timeout = timeout
        self._producer = None
        self._lock = threading.Lock()

    def _get(self):
        from kafka import KafkaProducer

        with self._lock:
            if self._producer is None:
                ms = int(self.timeout * 1000)
                self._producer = KafkaProducer(
                    **{
                        **self.client,
                        "acks": "all",
                        "enable_idempotence": True,
                        "linger_ms": 0,
                        "max_block_ms": ms,
                        "request_timeout_ms": ms,
                        "delivery_timeout_ms": ms,
                        "bootstrap_timeout_ms": ms,
                    }
                )
            return self._producer

    def warm_up(self) -> None:
        """Connect now rather than on the first report (errors are left for the first report)."""
        try:
            self._get()
        except Exception as exc:
            log.warning("kafka not reachable yet", error=type(exc).__name__)

    def publish(self, key: bytes, value: bytes):
        """Send and wait for the broker's acknowledgement; RecordMetadata, or BrokerUnavailable."""
        from kafka.errors import KafkaError

        producer = None
        try:
            producer = self._get()
            return producer.send(self.topic, key=key, value=value).get(timeout=self.timeout + 1)
        except (KafkaError, OSError) as exc:
            self._discard(producer)
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def _discard(self, producer) -> None:
        # A producer that failed may be stuck (fatal idempotence state, dead connections): start afresh,
        # and close the old one in the background so the failing request answers without waiting.
        with self._lock:
            if producer is None or producer is not self._producer:
                return
            self._producer = None
        threading.Thread(target=producer.close, kwargs={"timeout": 1}, daemon=True).start()

    def close(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.timeout)


# ---------------------------------------------------------------------------------------------------------
# HTTP


class IntakeHandler(BaseHTTPRequestHandler):
    server: IntakeServer
    server_version = "tocsin-intake"
    sys_version = ""

    def setup(self) -> None:
        self.timeout = self.server.config.request_timeout_seconds  # slow clients do not hold a thread
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
        self.publisher = Publisher(client, config.topic, config.send_timeout_seconds)
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
