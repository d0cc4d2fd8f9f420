"""The `tocsin` command line for operators."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from kafka import KafkaAdminClient
from pydantic import ValidationError

from tocsin.cli.flink import flink_app
from tocsin.cli_errors import exit_with_errors, fail, operator_errors
from tocsin.cli_options import (
    Bootstrap,
    ClientProperties,
    CloudEventsSource,
    SchemaRegistryUrl,
    Serialization,
    duration,
    kafka_settings,
    refuse_secret_flags,
    serialization_settings,
)
from tocsin.config import TelemetrySettings, cache_dirs
from tocsin.connectors.cli import app as connect_app
from tocsin.connectors.cli import intake_app
from tocsin.kafka.topics import ALERTS, DEFAULT_DEPLOYMENT, create_topics, load_topics
from tocsin.pipelines.backtest.cli import backtest
from tocsin.router.cli import ledger_app, router_app, routes_app, silence_app
from tocsin.serde.check import BaselineError, baseline, check_schemas, invalid_schemas
from tocsin.telemetry.logging import configure_logging
from tocsin.validation import error_messages

app = typer.Typer(
    help="tocsin: streaming early warning for atrocity crimes, linked to a response.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
topics_app = typer.Typer(help="Kafka topics of tocsin.", no_args_is_help=True)
schemas_app = typer.Typer(help="Avro schemas of tocsin's records.", no_args_is_help=True)
kafka_app = typer.Typer(
    help="The local single-node Kafka broker for development, tests and the demo.", no_args_is_help=True
)
# The local cluster's ports unless KAFKA_CLUSTER_PORTS / KAFKA_CLUSTER_CONTROLLER_PORTS say otherwise: clear
# of the local broker's (9092, 9093) and the test broker's (29092, 29093).
CLUSTER_PORTS, CLUSTER_CONTROLLER_PORTS = "19092,19093,19094", "19192,19193,19194"
kafka_cluster_app = typer.Typer(
    help="A local three-broker Kafka cluster for development and tests: three KRaft nodes, each broker "
    f"and controller (KAFKA_CLUSTER_PORTS, default {CLUSTER_PORTS}; KAFKA_CLUSTER_CONTROLLER_PORTS, "
    f"default {CLUSTER_CONTROLLER_PORTS}; KAFKA_CLUSTER_DATA).",
    no_args_is_help=True,
)
kafka_app.add_typer(kafka_cluster_app, name="cluster")
pipeline_app = typer.Typer(help="Beam pipelines on a streaming runner.", no_args_is_help=True)
rules_app = typer.Typer(
    help="Threshold rules: check a file, dry-run it over recorded signals.", no_args_is_help=True
)
alerts_app = typer.Typer(help=f"Alert events on {ALERTS}.", no_args_is_help=True)
indicators_app = typer.Typer(
    help="The indicator catalogue: what an observation matches.", no_args_is_help=True
)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(kafka_app, name="kafka")
app.add_typer(flink_app, name="flink")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(rules_app, name="rules")
app.add_typer(alerts_app, name="alerts")
app.add_typer(indicators_app, name="indicators")


# The stages' own command groups, composed here (the one place that imports stages). Each stage's CLI
# module imports its stage's code only when a command runs.
for _name, _group in (
    ("connect", connect_app),
    ("intake", intake_app),
    ("router", router_app),
    ("routes", routes_app),
    ("silence", silence_app),
    ("ledger", ledger_app),
):
    app.add_typer(_group, name=_name)
app.command("backtest", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(backtest)


@app.callback()
def _setup(
    log_format: Annotated[str, typer.Option(envvar="TOCSIN_LOG_FORMAT", help="json or console")] = "console",
    log_level: Annotated[str, typer.Option(envvar="TOCSIN_LOG_LEVEL")] = "info",
    serialization: Serialization = None,
    schema_registry_url: SchemaRegistryUrl = None,
    cloudevents_source: CloudEventsSource = None,
) -> None:
    settings = TelemetrySettings(log_format=log_format, log_level=log_level)
    configure_logging(settings.log_format, settings.log_level)
    # Here, once: every command's writers frame alike, its readers resolve registry ids, and its
    # CloudEvents name this deployment as their source.
    serialization_settings(serialization, schema_registry_url, cloudevents_source)


# -- topics ----------------------------------------------------------------------------------------


@topics_app.command("create")
def topics_create(
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    deployment: Annotated[
        str,
        typer.Option(
            help="The topic list's deployment whose replication (replicas, min.insync.replicas) the "
            "topics get: single (one broker) or cluster (three or more)"
        ),
    ] = DEFAULT_DEPLOYMENT,
    topics_file: Annotated[
        Path | None, typer.Option(help="Topic list (default: the packaged topics.yaml)")
    ] = None,
) -> None:
    """Create every declared topic that does not exist yet (safe to run again)."""
    kafka = kafka_settings(bootstrap, client_properties)
    with operator_errors(kafka):
        try:
            topics = load_topics(topics_file)
        except yaml.YAMLError as error:
            exit_with_errors(topics_file, [f"<root>: invalid YAML: {' '.join(str(error).split())}"])
        except ValidationError as error:
            exit_with_errors(topics_file, error_messages(error))
        try:
            topics.replication(deployment)  # before the broker is asked anything
        except KeyError as error:
            fail(f"error: --deployment: {error.args[0]}")
        admin = KafkaAdminClient(**kafka.client_config())
        try:
            outcome = create_topics(admin, topics, deployment)
        finally:
            admin.close()
    for name, state in outcome.items():
        typer.echo(f"{state:8} {name}")


@topics_app.command("list")
def topics_list() -> None:
    """Print the declared topics with their schema and purpose."""
    for topic in load_topics().topics:
        typer.echo(
            f"{topic.name:28} {topic.schema_name:16} p={topic.partitions} {topic.cleanup:14} {topic.purpose}"
        )


# -- schemas ---------------------------------------------------------------------------------------


@schemas_app.command("check")
def schemas_check(
    against: Annotated[
        str, typer.Option(help="Baseline: a git ref (default HEAD) or a folder of .avsc files")
    ] = "HEAD",
    schema_dir: Annotated[
        Path | None, typer.Option(help="Schemas to check (default: the project's schemas/)")
    ] = None,
    mode: Annotated[str, typer.Option(help="backward, forward or full")] = "full",
) -> None:
    """Fail when a schema changed incompatibly with the baseline (Avro resolution rules)."""
    from tocsin.schemas import SCHEMA_DIR

    directory = schema_dir or SCHEMA_DIR
    if not directory.is_dir():
        fail(f"error: --schema-dir {directory}: no such folder")
    try:
        problems = check_schemas(directory, baseline(against, directory), mode)
    except BaselineError as error:
        fail(f"error: {error}")
    problems += invalid_schemas(directory)  # an unparsable schema is a failure in its own right
    for problem in problems:
        typer.echo(problem, err=True)
    if problems:
        raise typer.Exit(1)
    typer.echo(f"{len(list(directory.glob('*.avsc')))} schemas compatible ({mode}) with {against}")


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="Folder to write the .avsc files into (made if missing)")],
) -> None:
    """Write each of tocsin's schemas as an .avsc file, for consumers and registries of their own."""
    from tocsin.serde.registry_ops import export_schemas

    try:
        written = export_schemas(directory)
    except OSError as error:
        fail(f"error: {directory}: {error.strerror or error}")
    for path in written:
        typer.echo(str(path))


@schemas_app.command("register")
def schemas_register(
    schema_registry_url: SchemaRegistryUrl = None,
    mode: Annotated[str, typer.Option("--compatibility", help="backward, forward or full")] = "full",
) -> None:
    """Register every schema under its topic's subject (<topic>-value) and set its compatibility."""
    from tocsin.serde import wire
    from tocsin.serde.registry_client import RegistryError
    from tocsin.serde.registry_ops import register_schemas
    from tocsin.serde.subjects import registry_compatibility

    url = schema_registry_url or wire.current().schema_registry_url
    if not url:
        fail("error: schemas register needs --schema-registry-url (or TOCSIN_SCHEMA_REGISTRY_URL)")
    try:
        level = registry_compatibility(mode)
    except ValueError as error:
        fail(f"error: --compatibility: {error}")
    try:
        for subject, schema_id in register_schemas(url, level):
            typer.echo(f"{subject}: id {schema_id}, {level}")
    except RegistryError as error:
        fail(f"error: {error}")


@schemas_app.command("list")
def schemas_list() -> None:
    """Print each schema with its fingerprint (the id written in every message header)."""
    from tocsin.serde.avro import default_registry

    for name, schema in sorted(default_registry().by_name.items()):
        typer.echo(f"{schema.fingerprint:016x}  {name}")


# -- local broker ----------------------------------------------------------------------------------


def _local_broker():
    from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker

    cache = cache_dirs()[0]
    return LocalBroker(
        libs_dir=Path(os.environ.get("KAFKA_LIBS", cache / f"kafka-{KAFKA_VERSION}" / "libs")),
        data_dir=Path(os.environ.get("KAFKA_DATA", cache / "kafka-data")),
        port=int(os.environ.get("KAFKA_PORT", "9092")),
        controller_port=int(os.environ.get("KAFKA_CONTROLLER_PORT", "9093")),
    )


@kafka_app.command("up")
def kafka_up() -> None:
    """Start the local broker (KAFKA_PORT, KAFKA_DATA) and wait until it answers."""
    from tocsin.kafka.local_broker import BrokerError

    broker = _local_broker()
    try:
        pid = broker.start()
    except BrokerError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"kafka up: {broker.bootstrap_servers} (pid {pid}, data {broker.data_dir})")


@kafka_app.command("down")
def kafka_down() -> None:
    """Stop the local broker by its recorded pid."""
    stopped = _local_broker().stop()
    typer.echo("kafka stopped" if stopped else "kafka was not running")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs (exit 1 if not)."""
    broker = _local_broker()
    pid = broker.running_pid()
    typer.echo(f"running: {broker.bootstrap_servers} (pid {pid})" if pid else "not running")
    if not pid:
        raise typer.Exit(1)


def _local_cluster():
    from tocsin.kafka.local_broker import KAFKA_VERSION, ClusterLayoutError, LocalCluster, cluster_layout

    cache = cache_dirs()[0]
    try:
        ports, controller_ports = cluster_layout(
            os.environ.get("KAFKA_CLUSTER_PORTS", CLUSTER_PORTS),
            os.environ.get("KAFKA_CLUSTER_CONTROLLER_PORTS", CLUSTER_CONTROLLER_PORTS),
        )
    except ClusterLayoutError as error:
        exit_with_errors("KAFKA_CLUSTER_PORTS, KAFKA_CLUSTER_CONTROLLER_PORTS", error.errors)
    return LocalCluster(
        libs_dir=Path(os.environ.get("KAFKA_LIBS", cache / f"kafka-{KAFKA_VERSION}" / "libs")),
        data_dir=Path(os.environ.get("KAFKA_CLUSTER_DATA", cache / "kafka-cluster-data")),
        ports=ports,
        controller_ports=controller_ports,
    )


@kafka_cluster_app.command("up")
def kafka_cluster_up() -> None:
    """Start the local cluster's brokers and wait until the cluster has all of them."""
    from tocsin.kafka.local_broker import BrokerError

    cluster = _local_cluster()
    try:
        pids = cluster.start()
    except BrokerError as exc:
        fail(f"error: {exc}")
    listed = ", ".join(str(pid) for pid in pids.values())
    typer.echo(f"kafka cluster up: {cluster.bootstrap_servers} (pids {listed}, data {cluster.data_dir})")


@kafka_cluster_app.command("down")
def kafka_cluster_down() -> None:
    """Stop the local cluster's brokers by their recorded pids."""
    stopped = _local_cluster().stop()
    typer.echo("kafka cluster stopped" if stopped else "kafka cluster was not running")


@kafka_cluster_app.command("status")
def kafka_cluster_status() -> None:
    """Say which of the local cluster's brokers run (exit 1 unless all do)."""
    cluster = _local_cluster()
    pids = cluster.running_pids()
    for node in cluster.nodes():
        pid = pids[node.node_id]
        state = f"running (pid {pid})" if pid else "not running"
        typer.echo(f"broker {node.node_id}: {node.bootstrap_servers} {state}")
    if not all(pids.values()):
        raise typer.Exit(1)


# Each Beam job parses its own arguments (pipeline options included), so typer passes them through.
PIPELINE_JOBS = {
    "window-count": (
        "tocsin.pipelines.window_count",
        "Count records per key in event-time windows (the reference streaming job); --help for options.",
    ),
    "indicators": (
        "tocsin.pipelines.indicators.job",
        "Raw incidents and news -> observations -> windowed indicator signals; --help for options.",
    ),
    "alerts": (
        "tocsin.pipelines.rules.job",
        "Indicator signals -> threshold rules -> alert events; --help for options.",
    ),
}


def _pipeline_command(name: str, module: str, summary: str) -> None:
    def command(ctx: typer.Context) -> None:
        import importlib

        importlib.import_module(module).run(list(ctx.args))

    pipeline_app.command(
        name,
        help=summary,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(command)


for _name, (_module, _summary) in PIPELINE_JOBS.items():
    _pipeline_command(_name, _module, _summary)


# -- rules and alerts --------------------------------------------------------------------------------

CatalogueOpt = Annotated[
    Path | None, typer.Option("--catalogue", help="Indicator catalogue (default: packaged)")
]


def _ruleset(file: Path, catalogue: Path | None):
    from tocsin.pipelines.indicators.catalogue import CatalogueError, load_catalogue
    from tocsin.pipelines.rules.config import RulesError, load_rules

    with operator_errors():  # a --catalogue that is not there
        try:
            cat = load_catalogue(catalogue)
        except CatalogueError as error:
            exit_with_errors(catalogue or Path("catalogue"), error.errors)
    try:
        return load_rules(file, cat)
    except RulesError as error:
        exit_with_errors(file, error.errors)


@rules_app.command("check")
def rules_check(file: Path, catalogue: CatalogueOpt = None) -> None:
    """Validate a rules file against the catalogue; exit 1 listing every error."""
    ruleset = _ruleset(file, catalogue)
    for rule in ruleset.rules:
        typer.echo(f"{rule.id:40} {rule.kind:15} {rule.window:6} {rule.version}")
    typer.echo(f"{len(ruleset.rules)} rules valid")


@rules_app.command("test")
def rules_test(
    file: Path,
    signals: Annotated[
        Path, typer.Option("--signals", help="Signals as JSON lines (indicators --batch --output-file)")
    ],
    catalogue: CatalogueOpt = None,
) -> None:
    """Dry run: what the rules would fire over recorded signals, and why."""
    from tocsin.pipelines.rules.dryrun import SortedSignals, describe, dry_run, signal_lines

    ruleset = _ruleset(file, catalogue)
    counted = {"signals": 0}

    def every(lines):  # all signals are counted, those no rule reads too
        for signal in lines:
            counted["signals"] += 1
            yield signal

    with operator_errors():
        try:
            # sorted on disk in runs, not held: a replay's output can be millions of signals
            with SortedSignals(every(signal_lines([signals]))) as ordered:
                alerts = dry_run(ruleset, ordered, ordered=True)
        except ValueError as error:  # a line that is not JSON
            fail(f"error: {signals}: not JSON lines ({error})")
    for alert in alerts:
        typer.echo(describe(alert))
    firing = {a["id"]: a["status"] for a in alerts}
    still = sum(1 for s in firing.values() if s != "RESOLVED")
    counts = f"{counted['signals']} signals, {len(alerts)} alert events, {len(firing)} alerts"
    typer.echo(f"{counts}, {still} still firing")


@indicators_app.command("explain")
def indicators_explain(
    text: Annotated[str | None, typer.Argument(help="A headline or report text")] = None,
    language: Annotated[str | None, typer.Option(help="ISO 639-1 language (default: every lexicon)")] = None,
    source_type: Annotated[str, typer.Option(help="NEWS, FIELD_MONITOR, CONFLICT_DATA...")] = "NEWS",
    file: Annotated[
        Path | None, typer.Option("--file", help="CSV (title[,text,language,source_type]) or JSON lines")
    ] = None,
    catalogue: CatalogueOpt = None,
) -> None:
    """Which indicators an observation matches and why (matcher, term, code), and the deaths read from it."""
    from tocsin.pipelines.indicators.catalogue import CatalogueError, load_catalogue
    from tocsin.pipelines.indicators.explain import (
        ObservationsFileError,
        describe,
        explain,
        observation_of,
        read_observations,
        tally,
    )

    if (text is None) == (file is None):
        typer.echo("give a TEXT or --file, not both", err=True)
        raise typer.Exit(1)
    with operator_errors():  # a --catalogue that is not there
        try:
            cat = load_catalogue(catalogue)
        except CatalogueError as error:
            exit_with_errors(catalogue or Path("catalogue"), error.errors)
    if text is not None:
        observation = observation_of(text, language, source_type)
        typer.echo(describe(observation, explain(cat, observation)))
        return
    results = []
    try:
        for observation in read_observations(file):
            result = explain(cat, observation)
            results.append(result)
            typer.echo(describe(observation, result))
    except ObservationsFileError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(tally(results))


@alerts_app.command("tail")
def alerts_tail(
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: Annotated[str, typer.Option(help="Alert topic")] = ALERTS,
    from_beginning: Annotated[
        bool, typer.Option("--from-beginning", help="Start at the oldest alert")
    ] = False,
    max_alerts: Annotated[int | None, typer.Option("--max", help="Stop after this many")] = None,
    idle_timeout: Annotated[
        str | None, typer.Option(help="Stop after this long without an alert (a duration: 30s, 5m)")
    ] = None,
) -> None:
    """Print alert events as they arrive (the example consumer for downstream services)."""
    from tocsin.alerts_tail import tail
    from tocsin.pipelines.rules.dryrun import describe

    kafka = kafka_settings(bootstrap, client_properties)
    with operator_errors(kafka):
        count = tail(
            kafka.client_config(),
            topic,
            lambda alert: typer.echo(describe(alert)),
            from_beginning=from_beginning,
            max_alerts=max_alerts,
            idle_timeout_s=None if idle_timeout is None else duration(idle_timeout, "--idle-timeout"),
        )
    typer.echo(f"{count} alert events", err=True)


@app.command()
def demo(
    bootstrap: Bootstrap = None,
    speed: Annotated[
        float | None, typer.Option(help="Replay event time N times faster than real time")
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Keep the console up at the end until Enter is pressed (on a terminal)")
    ] = True,
) -> None:
    """Run tocsin on the bundled real data: local broker, topics, every connector, a summary, the console."""
    from tocsin.cli.demo import run_demo

    raise typer.Exit(run_demo(bootstrap, speed, wait))


def main() -> None:
    refuse_secret_flags(sys.argv[1:], "tocsin")  # before typer, whose "No such option" would not say why
    app(prog_name="tocsin")
