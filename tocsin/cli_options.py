"""Options every tocsin command line shares, declared once, and the settings they build.

`--bootstrap-servers` is declared here for the three typer command lines (tocsin/cli, connectors/cli.py,
router/cli.py); its model, default and environment variables are tocsin.config.KafkaSettings', which
the Beam jobs' Kafka options are derived from too (tocsin.pipelines.options), and so is
`--kafka-client-properties`; no secret is ever a flag (refuse_secret_flags). So are `--metrics-port` and
`--metrics-address` of every long-running command (the Beam jobs declare the same two flags, with the
same default and environment variable, in tocsin.pipelines.options), and `start_metrics` serves them.
`--serialization` and `--schema-registry-url` are tocsin.config.SerializationSettings', given once to
`tocsin` itself (they frame every record the command writes) and to the Beam jobs (their KafkaOptions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from tocsin.cli_errors import fail
from tocsin.config import KAFKA_SECRETS, KafkaSettings, SerializationSettings
from tocsin.durations import parse_duration
from tocsin.serde import wire
from tocsin.telemetry.metrics import METRICS_ADDRESS_ENV, serve_metrics
from tocsin.validation import error_messages

DEFAULT_BOOTSTRAP = KafkaSettings.model_fields["bootstrap_servers"].default

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap-servers",
        "-b",
        envvar="TOCSIN_KAFKA_BOOTSTRAP_SERVERS",
        show_default=False,
        help=f"Kafka bootstrap servers, host:port[,host:port] (default {DEFAULT_BOOTSTRAP}; security "
        "settings: TOCSIN_KAFKA_*)",
    ),
]


ClientProperties = Annotated[
    Path | None,
    typer.Option(
        "--kafka-client-properties",
        show_default=False,
        help=f"{KafkaSettings.model_fields['client_properties'].description} [env: "
        "TOCSIN_KAFKA_CLIENT_PROPERTIES]",
    ),
]


MetricsPort = Annotated[
    int | None, typer.Option("--metrics-port", help="Serve Prometheus /metrics on this port (0: a free one)")
]
MetricsAddress = Annotated[
    str,
    typer.Option(
        "--metrics-address",
        envvar=METRICS_ADDRESS_ENV,
        help="Address /metrics listens on, with --metrics-port (0.0.0.0: every interface, as in tocsin's "
        "container image)",
    ),
]


def start_metrics(port: int | None, address: str, prefix: str = "error") -> int | None:
    """Serve /metrics on address:port (nothing without a port); the port bound. An address that cannot
    be bound is one line naming both flags, exit status 1."""
    try:
        return serve_metrics(port, address)
    except OSError as error:  # the port is taken, or the address is not this machine's or not a host
        fail(
            f"{prefix}: --metrics-address {address} --metrics-port {port}: "
            f"{error.strerror or error}; /metrics not served"
        )


def kafka_settings(bootstrap: str | None, client_properties: Path | None = None) -> KafkaSettings:
    """The command's Kafka settings: --bootstrap-servers and --kafka-client-properties, else
    TOCSIN_KAFKA_*, else the defaults. Every problem is listed in one line."""
    given = {"bootstrap_servers": bootstrap, "client_properties": client_properties}
    try:
        return KafkaSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as error:  # the whole-model checks read as the sentences they are
        lines = (m.removeprefix("<root>: ") for m in error_messages(error))
        fail(f"error: Kafka settings (TOCSIN_KAFKA_*): {'; '.join(lines)}")


# The flags a secret would have, in both of Beam's spellings (--kafka-sasl-password, --kafka_sasl_password).
SECRET_FLAGS = {
    spelling: name
    for name in KAFKA_SECRETS
    for spelling in (f"--kafka-{name.replace('_', '-')}", f"--kafka_{name}")
}


def refuse_secret_flags(argv: list[str], prog: str) -> None:
    """A secret on the command line is refused, in one line, before anything runs: `ps` shows a command
    line to every user of the machine, and a Beam job would send it to its runner with its options."""
    for arg in argv:
        flag = arg.split("=", 1)[0]
        if flag in SECRET_FLAGS:
            name = SECRET_FLAGS[flag]
            fail(
                f"{prog}: error: {flag}: a secret is never taken on the command line (ps shows it to every "
                f"user); give its file, TOCSIN_KAFKA_{name.upper()}_FILE=PATH (a job's --kafka-"
                f"{name.replace('_', '-')}-file PATH), or TOCSIN_KAFKA_{name.upper()}",
                code=2,
            )


def duration(text: str, flag: str) -> int:
    """Whole seconds of a duration flag, or one line naming the flag (tocsin.durations' grammar)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        fail(f"error: {flag}: {error}")


_SERIALIZATION = SerializationSettings.model_fields

Serialization = Annotated[
    str | None,
    typer.Option(
        "--serialization",
        envvar="TOCSIN_SERIALIZATION",
        show_default=False,
        help=f"{_SERIALIZATION['serialization'].description} (default single-object)",
    ),
]
SchemaRegistryUrl = Annotated[
    str | None,
    typer.Option(
        "--schema-registry-url",
        envvar="TOCSIN_SCHEMA_REGISTRY_URL",
        show_default=False,
        help=_SERIALIZATION["schema_registry_url"].description,
    ),
]


CloudEventsSource = Annotated[
    str | None,
    typer.Option(
        "--cloudevents-source",
        envvar="TOCSIN_CLOUDEVENTS_SOURCE",
        show_default=False,
        help=f"{_SERIALIZATION['cloudevents_source'].description} (default tocsin)",
    ),
]


def serialization_settings(
    serialization: str | None, url: str | None, cloudevents_source: str | None = None
) -> SerializationSettings:
    """The process's wire format from the flags (else TOCSIN_*, else the defaults), made the one every
    encode and decode of the process uses (tocsin.serde.wire); a bad combination is one line."""
    given = {
        "serialization": serialization,
        "schema_registry_url": url,
        "cloudevents_source": cloudevents_source,
    }
    try:
        settings = SerializationSettings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as error:
        # The one whole-model check reads as the sentence it is, without pydantic's "<root>: ".
        fail(f"error: {'; '.join(m.removeprefix('<root>: ') for m in error_messages(error))}")
    return wire.configure(settings)
