"""HTTP intake of incident reports from civil-society organisations and field monitors.

`POST /v1/reports` takes one report as JSON (`ReportIn`), authenticates the organisation by its bearer
token, pseudonymises the reporter, optionally coarsens the coordinates, and produces an IncidentReport
to Kafka. It answers 202 with the record id only once the broker has acknowledged the record (acks=all,
idempotent producer); when Kafka does not acknowledge in time it answers 503 and the client sends again.
Nothing is buffered in the server, so stopping it at any moment loses no accepted report.

Configuration (YAML or JSON, `load_config`): see `intake.example.yaml` beside this package's modules.
Only SHA-256 digests of tokens belong in the file (`tocsin intake token` makes a token and its digest);
the organisations are written as in the router's config (`tocsin.organisations`).

Privacy: the reporter's identity never leaves the request handler. It is replaced by
HMAC-SHA256(secret, organisation + ":" + reporter) before the record is built, is excluded from the
model's repr, and is never logged (nor is the token). With `coarsen_km`, coordinates are snapped to the
nearest point of a grid whose spacing is `coarsen_km` north-south and east-west (`coarsen`), so every
report in the same cell gets the same point, at most about 0.71 x coarsen_km from the true one.

The modules, in the order a report meets them: `server` (HTTP, on `tocsin.web`), `checks` (token, rate),
`model` (the body), `record` (pseudonym, coarsening, the IncidentReport), `publish` (Kafka); `config`.
"""

from tocsin.connectors.intake.checks import RateLimiter, authenticate
from tocsin.connectors.intake.config import (
    EXAMPLE,
    SECRET_ENV,
    IntakeConfig,
    IntakeConfigError,
    load_config,
    parse_config,
)
from tocsin.connectors.intake.model import BadRequest, FatalitiesIn, ReportIn, error_list, parse_report
from tocsin.connectors.intake.publish import BrokerUnavailable, Publisher
from tocsin.connectors.intake.record import KM_PER_DEGREE, coarsen, pseudonym, to_record
from tocsin.connectors.intake.server import HEALTH_PATH, REPORTS_PATH, IntakeServer, intake_app, serve

__all__ = [
    "EXAMPLE",
    "HEALTH_PATH",
    "KM_PER_DEGREE",
    "REPORTS_PATH",
    "SECRET_ENV",
    "BadRequest",
    "BrokerUnavailable",
    "FatalitiesIn",
    "IntakeConfig",
    "IntakeConfigError",
    "IntakeServer",
    "Publisher",
    "RateLimiter",
    "ReportIn",
    "authenticate",
    "coarsen",
    "error_list",
    "intake_app",
    "load_config",
    "parse_config",
    "parse_report",
    "pseudonym",
    "serve",
    "to_record",
]
