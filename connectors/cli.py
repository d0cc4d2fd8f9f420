"""`tocsin connect ...`: run a connector from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tocsin.cli_errors import fail, operator_errors
from tocsin.cli_options import (
    Bootstrap,
    ClientProperties,
    MetricsAddress,
    MetricsPort,
    duration,
    kafka_settings,
    start_metrics,
)
from tocsin.kafka.topics import CONNECTOR_STATE, DEAD_LETTERS, INCIDENTS, NEWS
from tocsin.telemetry.metrics import DEFAULT_METRICS_ADDRESS

app = typer.Typer(help="Put incident reports and news onto Kafka.", no_args_is_help=True)

Speed = Annotated[
    float | None, typer.Option(help="Replay N times faster than event time (default: as fast as possible)")
]
Topic = Annotated[str, typer.Option(help="Topic to write to")]
DeadLetterTopic = Annotated[str, typer.Option(help="Dead-letter topic")]
BatchSize = Annotated[int, typer.Option(help="Records per Kafka transaction")]
StateTopic = Annotated[str, typer.Option(help="Compacted topic holding the connectors' cursors")]


def _serve(metrics: tuple[int | None, str]) -> None:
    """(--metrics-port, --metrics-address): /metrics served there, or one line and exit status 1."""
    start_metrics(*metrics)


def _summary(name: str, counts: dict) -> None:
    typer.echo(
        f"{name}: {counts['produced']} produced, {counts['dead_letter']} dead letters, "
        f"{counts['skipped']} already done"
    )


def _file_error(exc: Exception) -> None:
    """A file the connector refuses as a whole: its one-line reason on stderr, exit status 1."""
    fail(f"error: {exc}")


def _country(value: str | None) -> str | None:
    from tocsin.formats.reliefweb_csv import country_code

    try:
        return country_code(value) if value else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _topics(topic: str, dead_letter_topic: str, state_topic: str) -> dict:
    return {"topic": topic, "dead_letter_topic": dead_letter_topic, "state_topic": state_topic}


def _replay(ingest, file: Path, kafka_flags: tuple, metrics: tuple, **settings) -> None:
    """A file replay as every replay command runs it: a bad file or an absent broker is one line."""
    from tocsin.formats.records import BadFile

    kafka = kafka_settings(*kafka_flags)
    _serve(metrics)
    with operator_errors(kafka):
        try:
            counts = ingest(file, kafka.client_config(), **settings)
        except BadFile as exc:
            _file_error(exc)
    _summary(file.name, counts)


@app.command("ucdp")
def connect_ucdp(
    file: Annotated[Path, typer.Argument(help="UCDP GED CSV file")],
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Topic = INCIDENTS,
    dead_letter_topic: DeadLetterTopic = DEAD_LETTERS,
    speed: Speed = None,
    batch_size: BatchSize = 500,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
    state_topic: StateTopic = CONNECTOR_STATE,
) -> None:
    """Replay a UCDP GED CSV file (resumes where a previous run of the same file stopped)."""
    from tocsin.connectors.ingest import ingest_ucdp

    _replay(
        ingest_ucdp,
        file,
        (bootstrap, client_properties),
        (metrics_port, metrics_address),
        **_topics(topic, dead_letter_topic, state_topic),
        speed=speed,
        batch_size=batch_size,
    )


@app.command("reliefweb-csv")
def connect_reliefweb_csv(
    file: Annotated[Path, typer.Argument(help="ReliefWeb report listing (CSV) file")],
    country: Annotated[
        str | None,
        typer.Option(
            callback=_country, help="ISO alpha-3 country of the listing, for rows that name no country"
        ),
    ] = None,
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Topic = NEWS,
    dead_letter_topic: DeadLetterTopic = DEAD_LETTERS,
    speed: Speed = None,
    batch_size: BatchSize = 500,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
    state_topic: StateTopic = CONNECTOR_STATE,
) -> None:
    """Replay a ReliefWeb report listing, oldest report first (resumes where a previous run stopped)."""
    from tocsin.connectors.ingest import ingest_reliefweb_csv

    _replay(
        ingest_reliefweb_csv,
        file,
        (bootstrap, client_properties),
        (metrics_port, metrics_address),
        country=country,
        **_topics(topic, dead_letter_topic, state_topic),
        speed=speed,
        batch_size=batch_size,
    )


@app.command("gdelt")
def connect_gdelt(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Directory of GDELT 2.0 .export.CSV[.zip] files"),
    ] = None,
    url: Annotated[
        str | None, typer.Option(help="Base URL serving lastupdate.txt (e.g. GDELT's v2 feed)")
    ] = None,
    once: Annotated[bool, typer.Option(help="With --url: fetch the latest file once and stop")] = False,
    interval: Annotated[str, typer.Option(help="With --url: time between polls (a duration)")] = "15m",
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Topic = INCIDENTS,
    dead_letter_topic: DeadLetterTopic = DEAD_LETTERS,
    speed: Speed = None,
    batch_size: BatchSize = 1000,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
    state_topic: StateTopic = CONNECTOR_STATE,
) -> None:
    """Replay a directory of GDELT export files in time order, or follow GDELT's lastupdate.txt."""
    from tocsin.connectors.ingest import ingest_gdelt

    if (directory is None) == (url is None):
        raise typer.BadParameter("give exactly one of --dir or --url")
    if directory is not None and not directory.is_dir():
        fail(f"error: --dir {directory}: no such folder")
    kafka = kafka_settings(bootstrap, client_properties)
    _serve((metrics_port, metrics_address))
    with operator_errors(kafka, url=url):
        totals = ingest_gdelt(
            kafka.client_config(),
            directory=directory,
            url=url,
            once=once,
            interval=duration(interval, "--interval"),
            **_topics(topic, dead_letter_topic, state_topic),
            speed=speed,
            batch_size=batch_size,
        )
    _summary(str(directory or url), totals)


@app.command("rss")
def connect_rss(
    urls: Annotated[list[str], typer.Argument(help="Feed URLs (RSS or Atom)")],
    once: Annotated[bool, typer.Option(help="Poll every feed once and stop")] = False,
    interval: Annotated[str, typer.Option(help="Time between polls (a duration)")] = "5m",
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Topic = NEWS,
    dead_letter_topic: DeadLetterTopic = DEAD_LETTERS,
    state_topic: StateTopic = CONNECTOR_STATE,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
) -> None:
    """Poll RSS/Atom feeds with conditional GET; only items not seen before are produced."""
    from tocsin.connectors import rss

    kafka = kafka_settings(bootstrap, client_properties)
    _serve((metrics_port, metrics_address))
    with operator_errors(kafka):
        results = rss.run_feeds(
            urls,
            kafka.client_config(),
            duration(interval, "--interval"),
            once,
            **_topics(topic, dead_letter_topic, state_topic),
        )
    for url, counts in results.items():
        typer.echo(f"{url}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


@app.command("reliefweb")
def connect_reliefweb(
    source: Annotated[str, typer.Argument(help="ReliefWeb API /reports URL, or a saved JSON response")],
    max_pages: Annotated[int | None, typer.Option(help="Stop after this many pages")] = None,
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Topic = NEWS,
    dead_letter_topic: DeadLetterTopic = DEAD_LETTERS,
    state_topic: StateTopic = CONNECTOR_STATE,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
) -> None:
    """Ingest ReliefWeb reports page by page (resumes after the last committed page)."""
    from tocsin.connectors import reliefweb

    kafka = kafka_settings(bootstrap, client_properties)
    _serve((metrics_port, metrics_address))
    with operator_errors(kafka, url=source):
        counts = reliefweb.run_reliefweb(
            source,
            kafka.client_config(),
            max_pages=max_pages,
            **_topics(topic, dead_letter_topic, state_topic),
        )
    typer.echo(f"{source}: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items()))


intake_app = typer.Typer(
    help="Incident reports from civil society and field monitors over HTTP.", no_args_is_help=True
)


@intake_app.command("serve")
def intake_serve(
    config: Annotated[Path, typer.Option(help="Intake configuration (YAML or JSON)")],
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default from the config: 127.0.0.1)")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (0 picks a free one)")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic to write to")] = None,
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
) -> None:
    """Serve POST /v1/reports: 202 with the report id once Kafka has acknowledged the record."""
    from tocsin.cli_errors import exit_with_errors
    from tocsin.connectors.intake import IntakeConfigError, load_config, serve

    try:
        settings = load_config(config, host=host, port=port, topic=topic)
    except IntakeConfigError as error:
        exit_with_errors(config, error.errors)
    kafka = kafka_settings(bootstrap, client_properties)
    _serve((metrics_port, metrics_address))
    with operator_errors(kafka):
        server = serve(settings, kafka.client_config())
    typer.echo(f"intake listening on {server.url}")
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@intake_app.command("token")
def intake_token() -> None:
    """Issue a new organisation token: give the token to the organisation, put the digest in the config."""
    from tocsin.organisations import issue_token

    token, digest = issue_token()
    typer.echo(f"token:        {token}\ntoken_sha256: {digest}")
