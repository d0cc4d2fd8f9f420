"""CLI of the response router: serve it, test routes, answer alerts, silence, read the ledger."""

from __future__ import annotations

import json
import secrets
import signal
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from tocsin.cli_errors import exit_with_errors, fail, operator_errors, url_error_line
from tocsin.cli_options import (
    Bootstrap,
    ClientProperties,
    MetricsAddress,
    MetricsPort,
    duration,
    kafka_settings,
    start_metrics,
)
from tocsin.kafka.topics import ALERTS, LEDGER, LEDGER_CHECKPOINTS, NOTIFICATIONS, RESPONSES
from tocsin.telemetry.metrics import DEFAULT_METRICS_ADDRESS

router_app = typer.Typer(
    help="The response router: deliver, chase acknowledgements, escalate.", no_args_is_help=True
)
routes_app = typer.Typer(help="The routing tree.", no_args_is_help=True)
silence_app = typer.Typer(help="Silences (need an admin organisation's token).", no_args_is_help=True)
ledger_app = typer.Typer(help="The ledger of who was warned and what they did.", no_args_is_help=True)

Config = Annotated[Path, typer.Option("--config", "-c", help="Router config YAML")]
Url = Annotated[str, typer.Option("--url", envvar="TOCSIN_ROUTER_URL", help="Router API")]
Token = Annotated[str, typer.Option("--token", envvar="TOCSIN_TOKEN", help="Your organisation's token")]
LedgerTopic = Annotated[str, typer.Option("--topic", help="Ledger topic")]
LedgerKey = Annotated[
    str | None,
    typer.Option(
        "--ledger-key",
        envvar="TOCSIN_LEDGER_KEY",
        show_envvar=True,
        help="The router's Ed25519 key: a PEM file's path, or the PEM text (`tocsin ledger keygen`). "
        "Without it the ledger is not signed, and can be forged by whoever can write to its topic",
    ),
]
TrustedKeysFile = Annotated[
    str | None,
    typer.Option(
        "--trusted-keys",
        envvar="TOCSIN_LEDGER_TRUSTED_KEYS",
        show_envvar=True,
        help="YAML file of the public keys whose ledger signatures are trusted, by key id",
    ),
]
CheckpointsTopic = Annotated[
    str, typer.Option("--checkpoints-topic", help="The router's signed checkpoints of the ledger head")
]
AllowUnsigned = Annotated[
    bool,
    typer.Option(
        "--allow-unsigned",
        help="Trust unsigned entries at the start of the ledger (one written before signing began)",
    ),
]


def _trust(key: str | None, trusted: str | None, allow_unsigned: bool, checkpoints: str):
    from tocsin.router.ledger_keys import LedgerKeyError
    from tocsin.router.ledger_trust import load_trust

    try:
        return load_trust(key, trusted, allow_unsigned, checkpoints)
    except LedgerKeyError as error:
        fail(str(error))


def _config(path: Path):
    from tocsin.router.config import RouterConfigError, load_router_config

    try:
        return load_router_config(path)
    except RouterConfigError as error:
        exit_with_errors(path, error.errors)


@router_app.command("serve")
def serve(
    config: Config,
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    listen: Annotated[str, typer.Option(help="API address host:port")] = "127.0.0.1:9095",
    alerts_topic: Annotated[str, typer.Option(help="Alerts to route")] = ALERTS,
    ledger_topic: Annotated[str, typer.Option(help="The ledger (hash chain)")] = LEDGER,
    notifications_topic: Annotated[str, typer.Option(help="Every delivery attempt")] = NOTIFICATIONS,
    responses_topic: Annotated[str, typer.Option(help="Responders' answers")] = RESPONSES,
    metrics_port: MetricsPort = None,
    metrics_address: MetricsAddress = DEFAULT_METRICS_ADDRESS,
    ledger_key: LedgerKey = None,
    trusted_keys: TrustedKeysFile = None,
    checkpoints_topic: CheckpointsTopic = LEDGER_CHECKPOINTS,
    allow_unsigned: AllowUnsigned = False,
    ha_group: Annotated[
        str | None,
        typer.Option(
            "--ha-group",
            envvar="TOCSIN_ROUTER_HA_GROUP",
            show_envvar=True,
            help="Run as one of several routers of this name: the one Kafka picks is active, the others "
            "wait as standbys and take over when it dies (router/leader.py)",
        ),
    ] = None,
) -> None:
    """Run the router: read alerts, notify, escalate, serve the responders' API, until stopped."""
    from tocsin.router.api import RouterAPI
    from tocsin.router.service import Router
    from tocsin.telemetry.logging import get_logger

    topics = {
        "alerts": alerts_topic,
        "ledger": ledger_topic,
        "notifications": notifications_topic,
        "responses": responses_topic,
    }
    settings = _config(config)
    # A router without a key writes the unsigned ledger routers wrote before signing, and so takes its
    # own unsigned entries back; with a key, only with --allow-unsigned (the prefix of an upgrade).
    trust = _trust(ledger_key, trusted_keys, allow_unsigned or not ledger_key, checkpoints_topic)
    kafka = kafka_settings(bootstrap, client_properties)
    host, _, port = listen.rpartition(":")
    if not port.isdigit():
        fail(f"error: --listen {listen}: not host:port")
    router = Router(settings, kafka.client_config(), topics, ledger=trust)
    try:  # bound before Kafka is reached; served once the router has started
        api = RouterAPI(router, host, int(port))
    except OSError as error:  # the port is taken, or the address is not this machine's
        fail(f"error: --listen {listen}: {error.strerror or error}")
    try:
        served = start_metrics(metrics_port, metrics_address)
    except SystemExit:
        api.stop()
        raise
    log = get_logger(stage="router")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    leadership = None
    try:
        with operator_errors(kafka):  # no broker
            if ha_group is not None:
                # A standby serves only its metrics (up, and tocsin_router_leader 0): its API would
                # answer from a state it has not read, so it is served once this router leads.
                leadership = _lead(kafka.client_config(), ledger_topic, ha_group, stop)
                if leadership is None:
                    return
            router.start(fence=ha_group)
    except (SystemExit, KeyboardInterrupt):
        api.stop()
        if leadership is not None:
            leadership.close()
        raise
    api.start()
    log.info("router serving", api=api.url, metrics_port=served, alerts_topic=alerts_topic, ha_group=ha_group)
    try:
        router.run(stop, keep=leadership.keep if leadership is not None else None)
    except KeyboardInterrupt:
        pass
    finally:
        api.stop()
        router.close()
        if leadership is not None:
            leadership.close()
    if leadership is not None and not stop.is_set():
        fail(f"error: router {ha_group}: no longer the active one (another router took over); exiting")


def _lead(client: dict, ledger_topic: str, group: str, stop: threading.Event):
    """This router's leadership of the group, once it has it; None when stopped while waiting."""
    from tocsin.router.leader import LEADER, Leadership

    leadership = Leadership(client, ledger_topic, group)
    LEADER.set(0)
    try:
        if not leadership.wait(stop):
            leadership.close()
            return None
    except KeyboardInterrupt:
        leadership.close()
        return None
    LEADER.set(1)
    return leadership


@router_app.command("token")
def token() -> None:
    """A new organisation token, and the digest to put in the router config."""
    from tocsin.organisations import token_digest

    value = secrets.token_urlsafe(32)
    typer.echo(f"token:        {value}\ntoken_sha256: {token_digest(value)}")


@routes_app.command("test")
def routes_test(
    labels: Annotated[list[str], typer.Argument(help="label=value ...")],
    config: Config,
) -> None:
    """Which receivers an alert with these labels goes to (like amtool config routes test)."""
    from tocsin.router.dispatch import group_key, match

    parsed = {}
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep:
            typer.echo(f"error: {item!r} is not label=value", err=True)
            raise typer.Exit(2)
        parsed[name] = value.strip('"')
    cfg = _config(config)
    for route in match(cfg.route, parsed):
        escalation = ""
        if route.escalation:
            steps = " -> ".join(f"{r} after {s}s" for r, s in cfg.escalations[route.escalation].steps)
            escalation = f"  escalation {route.escalation}: {steps}"
        typer.echo(f"{route.receiver}  (route {route.id}, group {group_key(parsed, route)}){escalation}")


def _call(url: str, token_value: str, method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token_value}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        try:
            answer = json.loads(error.read() or b"{}")
        except ValueError:  # not the router's API answering
            answer = {}
        for line in answer.get("errors", [str(error)]):
            typer.echo(f"error: {line}", err=True)
        raise typer.Exit(1) from None
    except urllib.error.URLError as error:  # nothing listening, unknown host, timeout
        fail(url_error_line(url, error, "the router"))
    except TimeoutError:
        fail(f"error: the router at {url} did not answer within 30s")


Responder = Annotated[str, typer.Option("--responder", "-r", help="Who answers, for your organisation")]


@router_app.command("ack")
def ack(alert_id: str, responder: Responder, url: Url = "http://127.0.0.1:9095", token: Token = "") -> None:
    """Acknowledge an alert: your organisation has it in hand (stops its escalation)."""
    _call(
        url,
        token,
        "POST",
        f"/v1/alerts/{quote(alert_id, safe='')}/responses",
        {"kind": "acknowledged", "responder": responder},
    )
    typer.echo(f"acknowledged {alert_id}")


@router_app.command("decide")
def decide(
    alert_id: str,
    responder: Responder,
    action_taken: Annotated[str | None, typer.Option(help="What was done")] = None,
    declined: Annotated[str | None, typer.Option(help="Why not")] = None,
    referred_to: Annotated[str | None, typer.Option(help="Receiver to refer the alert to")] = None,
    url: Url = "http://127.0.0.1:9095",
    token: Token = "",
) -> None:
    """Record a decision: --action-taken TEXT, --declined REASON or --referred-to RECEIVER."""
    chosen = [
        k for k, v in (("action_taken", action_taken), ("declined", declined), ("referred", referred_to)) if v
    ]
    if len(chosen) != 1:
        typer.echo("error: give exactly one of --action-taken, --declined, --referred-to", err=True)
        raise typer.Exit(2)
    body = {
        "kind": chosen[0],
        "responder": responder,
        "description": action_taken,
        "reason": declined,
        "referred_to": referred_to,
    }
    _call(url, token, "POST", f"/v1/alerts/{quote(alert_id, safe='')}/responses", body)
    typer.echo(f"{chosen[0]} recorded for {alert_id}")


@router_app.command("comment")
def comment(
    alert_id: str, text: str, responder: Responder, url: Url = "http://127.0.0.1:9095", token: Token = ""
) -> None:
    """Add a comment to an alert's record."""
    body = {"kind": "comment", "responder": responder, "description": text}
    _call(url, token, "POST", f"/v1/alerts/{quote(alert_id, safe='')}/responses", body)
    typer.echo(f"commented on {alert_id}")


@router_app.command("alerts")
def my_alerts(url: Url = "http://127.0.0.1:9095", token: Token = "") -> None:
    """The alerts routed to your organisation, with their answers."""
    for alert in _call(url, token, "GET", "/v1/alerts")["alerts"]:
        answered = "answered" if alert.get("acknowledged") else "UNANSWERED"
        typer.echo(
            f"{alert['status']:8} {alert['severity']:8} {answered:10} {alert['id']}  {alert['summary']}"
        )


@silence_app.command("add")
def silence_add(
    matcher: Annotated[list[str], typer.Option("--matcher", "-m", help='label="value" (=, !=, =~, !~)')],
    author: Annotated[str, typer.Option()],
    reason: Annotated[str, typer.Option()],
    duration_text: Annotated[str, typer.Option("--duration", help="How long, e.g. 2h, 3d")] = "2h",
    url: Url = "http://127.0.0.1:9095",
    token: Token = "",
) -> None:
    """Silence the alerts that match every --matcher, for --duration."""
    seconds = duration(duration_text, "--duration")
    body = {"matchers": matcher, "author": author, "reason": reason, "duration_s": seconds}
    typer.echo(_call(url, token, "POST", "/v1/silences", body)["id"])


@silence_app.command("list")
def silence_list(url: Url = "http://127.0.0.1:9095", token: Token = "") -> None:
    """The silences in force, with who set them and why."""
    for s in _call(url, token, "GET", "/v1/silences")["silences"]:
        typer.echo(f"{s['id']}  {' '.join(s['matchers'])}  by {s['author']}: {s['reason']}")


@silence_app.command("expire")
def silence_expire(
    silence_id: str,
    author: Annotated[str, typer.Option()],
    url: Url = "http://127.0.0.1:9095",
    token: Token = "",
) -> None:
    """End a silence now."""
    _call(url, token, "DELETE", f"/v1/silences/{quote(silence_id, safe='')}?author={quote(author, safe='')}")
    typer.echo(f"expired {silence_id}")


@ledger_app.command("verify")
def ledger_verify(
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: LedgerTopic = LEDGER,
    trusted_keys: TrustedKeysFile = None,
    checkpoints_topic: CheckpointsTopic = LEDGER_CHECKPOINTS,
    allow_unsigned: AllowUnsigned = False,
) -> None:
    """Check the ledger: every entry signed by a trusted key and chained to the one before, and every
    checkpoint held; exit 1 with a line per record that is not, at its offset."""
    from tocsin.router.ledger_trust import read_checked

    trust = _trust(None, trusted_keys, allow_unsigned, checkpoints_topic)
    kafka = kafka_settings(bootstrap, client_properties)
    with operator_errors(kafka):
        verdict = read_checked(kafka.client_config(), topic, trust)
    for line in verdict.problems:
        typer.echo(line, err=True)
    if verdict.problems:
        raise typer.Exit(1)
    entries = verdict.trusted
    line = f"ledger verified: {len(entries)} entries, last hash {entries[-1].hash[:16] if entries else '-'}"
    if verdict.signed_by:
        line += f", signed by {', '.join(sorted(verdict.signed_by))}"
    if verdict.unsigned:
        line += f", the first {verdict.unsigned} unsigned (--allow-unsigned)"
    if verdict.signed_by and verdict.checkpoint is not None:
        after = entries[-1].sequence - verdict.checkpoint.sequence
        line += f"; last checkpoint at sequence {verdict.checkpoint.sequence} ({after} entries after it)"
    elif verdict.signed_by:
        line += "; no checkpoint yet: a cut tail cannot be found"
    typer.echo(line)


@ledger_app.command("keygen")
def ledger_keygen(
    key_file: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, mode 0600)")],
    trusted_keys: Annotated[
        Path | None, typer.Option("--trusted-keys", help="Add the public key to this file (made if missing)")
    ] = None,
    comment: Annotated[str, typer.Option(help="Said beside the key in the trusted keys file")] = "",
) -> None:
    """A new Ed25519 key for the router to sign its ledger with (--ledger-key), and its public key for
    the verifiers' trusted keys file."""
    import os

    import yaml

    from tocsin.router.ledger_keys import (
        LedgerKeyError,
        generate,
        parse_trusted_keys,
        private_pem,
        trusted_line,
    )

    key = generate()
    listed: dict = {"keys": []}
    if trusted_keys is not None and trusted_keys.exists():
        try:
            listed = yaml.safe_load(trusted_keys.read_text(encoding="utf-8"))
            parse_trusted_keys(listed, str(trusted_keys))  # a file it cannot read is not added to
        except (yaml.YAMLError, UnicodeDecodeError):
            fail(f"error: --trusted-keys {trusted_keys}: not a YAML file")
        except LedgerKeyError as error:
            fail(str(error))
    try:
        # O_EXCL: never over an existing key (the entries it signed would lose their signer), and
        # readable by its owner alone from the first byte.
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        fail(f"error: {key_file}: exists; a new key goes to a new file")
    except OSError as error:
        fail(f"error: {key_file}: {error.strerror}")
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem(key))
    line = trusted_line(key, comment)
    if trusted_keys is not None:
        listed["keys"].append(line)
        trusted_keys.write_text(yaml.safe_dump(listed, sort_keys=False), encoding="utf-8")
    typer.echo(f"key id {key.id}: private key in {key_file}")
    typer.echo(f"trusted keys entry: {json.dumps(line)}")


@ledger_app.command("show")
def ledger_show(
    alert_id: str,
    bootstrap: Bootstrap = None,
    client_properties: ClientProperties = None,
    topic: LedgerTopic = LEDGER,
) -> None:
    """The whole story of one alert, in order, with times."""
    from tocsin.router.ledger import read_ledger, story

    kafka = kafka_settings(bootstrap, client_properties)
    with operator_errors(kafka):
        lines = story(read_ledger(kafka.client_config(), topic), alert_id)
    if not lines:
        typer.echo(f"no ledger entry for {alert_id}", err=True)
        raise typer.Exit(1)
    for line in lines:
        typer.echo(line)
