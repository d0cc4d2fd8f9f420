"""Options every tocsin command line shares, declared once, and the settings they build.

`--bootstrap-servers` is declared here for the three typer command lines (tocsin/cli, connectors/cli.py,
router/cli.py); its model, default and environment variables are tocsin.config.KafkaSettings', which
the Beam jobs' Kafka options are derived from too (tocsin.pipelines.options). So are `--metrics-port` and
`--metrics-address` of every long-running command (the Beam jobs declare the same two flags, with the
same default and environment variable, in tocsin.pipelines.options), and `start_metrics` serves them.
"""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from tocsin.cli_errors import fail
from tocsin.config import KafkaSettings
from tocsin.durations import parse_duration
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


def kafka_settings(bootstrap: str | None) -> KafkaSettings:
    """The command's Kafka settings: --bootstrap-servers, else TOCSIN_KAFKA_*, else the defaults."""
    try:
        return KafkaSettings(bootstrap_servers=bootstrap) if bootstrap else KafkaSettings()
    except ValidationError as error:
        fail(f"error: Kafka settings (TOCSIN_KAFKA_*): {'; '.join(error_messages(error))}")


def duration(text: str, flag: str) -> int:
    """Whole seconds of a duration flag, or one line naming the flag (tocsin.durations' grammar)."""
    try:
        return parse_duration(text)
    except ValueError as error:
        fail(f"error: {flag}: {error}")
