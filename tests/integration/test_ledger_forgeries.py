"""Issue #19's forgeries of the ledger, on the real broker, as an attacker with write access to the
ledger topic (and none to the checkpoints topic) would make them: `tocsin ledger verify` names each at
its offset, corrupt bytes too (one line, exit 1, no traceback); the router skips what does not verify
instead of refusing to start; and a forged acknowledgement appended to the live ledger neither stops an
escalation nor, after a restart, shows the alert acknowledged."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest
from kafka import KafkaProducer
from typer.testing import CliRunner

from tests.conftest import router_serve_args, wait_for
from tests.integration.test_router import _healthy, an_alert, router_config, servers  # noqa: F401
from tocsin.cli import app
from tocsin.kafka.local_broker import free_port
from tocsin.router.ledger import LedgerWriter, chain, read_ledger, read_records
from tocsin.router.ledger_keys import generate, load_signing_key
from tocsin.serde.avro import SerdeError, decode_plain, default_registry, encode

pytestmark = pytest.mark.integration

LEDGER_ENTRY = default_registry().get("LedgerEntry")
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")


@pytest.fixture
def keys(tmp_path):
    """The router's key (made by `tocsin ledger keygen`, as an operator makes it) and the trusted keys
    file a verifier is given."""
    key_file, trusted = tmp_path / "router.key", tmp_path / "trusted-keys.yaml"
    made = CliRunner().invoke(app, ["ledger", "keygen", str(key_file), "--trusted-keys", str(trusted)])
    assert made.exit_code == 0, made.output
    return load_signing_key(str(key_file)), key_file, trusted


def send(bootstrap: str, topic: str, value: bytes) -> int:
    """Write a record as an attacker with write access to the topic would: its offset."""
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        return producer.send(topic, value=value, partition=0).get(30).offset
    finally:
        producer.close()


def verify(bootstrap, ledger, checkpoints, trusted) -> tuple[int, list[str], str]:
    args = ["ledger", "verify", "-b", bootstrap, "--topic", ledger, "--checkpoints-topic", checkpoints]
    result = CliRunner().invoke(app, [*args, "--trusted-keys", str(trusted)])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    # kafka-python's own log lines (a metadata refresh retried) go to stderr too, timestamped: not the
    # command's words.
    said = [line for line in result.stderr.splitlines() if not LOG_LINE.match(line)]
    return result.exit_code, said, result.stdout


def signed_ledger(bootstrap, make_topic, key, n: int):
    """n signed entries, then one checkpoint of the head (offset 0 of the checkpoints topic): written by
    a second writer, as a restarted router vouches for the head it found, so where it falls is fixed."""
    ledger, checkpoints = make_topic("ledger"), make_topic("checkpoints")
    client = {"bootstrap_servers": bootstrap}
    writer = LedgerWriter(client, ledger, None, key)
    for i in range(n):
        writer.append(1_700_000_000_000 + i, "silence.expired", f"s{i}", "router", {"id": f"s{i}"})
    writer.close()
    LedgerWriter(client, ledger, writer.last, key, checkpoints).close()
    return ledger, checkpoints


def test_appended_forgeries_are_each_found_at_their_offset(bootstrap, make_topic, keys):
    key, _, trusted = keys
    ledger, checkpoints = signed_ledger(bootstrap, make_topic, key, 3)
    code, problems, out = verify(bootstrap, ledger, checkpoints, trusted)
    assert (code, problems) == (0, [])
    last = read_ledger({"bootstrap_servers": bootstrap}, ledger)[-1]
    assert out == (
        f"ledger verified: 3 entries, last hash {last.hash[:16]}, signed by {key.id}; "
        "last checkpoint at sequence 2 (0 entries after it)\n"
    )
    ack = {"kind": "ACKNOWLEDGED", "organisation": "un", "responder": "forger"}
    other = generate()
    unsigned = chain(last, last.at + 1, "silence.expired", "s9", "router", {"id": "s9"})
    by_other = chain(last, last.at + 1, "silence.expired", "s9", "router", {"id": "s9"}, other)
    forged_ack = chain(last, last.at + 1, "response", "a1", "un/forger", ack)
    offsets = [send(bootstrap, ledger, encode(LEDGER_ENTRY, e.as_record())) for e in (unsigned, by_other)]
    offsets.append(send(bootstrap, ledger, encode(LEDGER_ENTRY, forged_ack.as_record())))
    code, problems, _ = verify(bootstrap, ledger, checkpoints, trusted)
    assert code == 1
    assert problems == [
        f"offset {offsets[0]} (sequence 3): not signed, after signed entries: forged",
        f"offset {offsets[1]} (sequence 3): signed with key {other.id}, which is not a trusted key: forged",
        f"offset {offsets[2]} (sequence 3): not signed, after signed entries: forged",
    ]


def test_a_rewrite_from_a_point_and_a_cut_tail_against_the_checkpoints(bootstrap, make_topic, keys):
    key, _, trusted = keys
    ledger, checkpoints = signed_ledger(bootstrap, make_topic, key, 5)
    client = {"bootstrap_servers": bootstrap}
    original = read_ledger(client, ledger)
    # The attacker re-creates the ledger topic (here: a new one, read with the real checkpoints).
    cut, rewritten = make_topic("cut"), make_topic("rewritten")
    for entry in original[:3]:
        send(bootstrap, cut, encode(LEDGER_ENTRY, entry.as_record()))
        send(bootstrap, rewritten, encode(LEDGER_ENTRY, entry.as_record()))
    forged = chain(original[2], original[3].at, "silence.expired", "s3", "someone", {"id": "s3"})
    send(bootstrap, rewritten, encode(LEDGER_ENTRY, forged.as_record()))
    after = chain(forged, forged.at + 1, "silence.expired", "s4", "someone", {"id": "s4"})
    send(bootstrap, rewritten, encode(LEDGER_ENTRY, after.as_record()))
    cut_line = (
        f"checkpoint offset 0: vouches for sequence 4 (hash {original[4].hash[:16]}), "
        "but the trusted "
        "ledger ends at sequence 2: entries cut or refused after it"
    )
    code, problems, _ = verify(bootstrap, cut, checkpoints, trusted)
    assert (code, problems) == (1, [cut_line])
    code, problems, _ = verify(bootstrap, rewritten, checkpoints, trusted)
    assert (code, problems) == (
        1,
        [
            "offset 3 (sequence 3): not signed, after signed entries: forged",
            "offset 4 (sequence 4): not signed, after signed entries: forged",
            cut_line,
        ],
    )


def test_corrupt_bytes_are_one_line_with_their_offset(bootstrap, make_topic, keys):
    key, _, trusted = keys
    ledger, checkpoints = signed_ledger(bootstrap, make_topic, key, 2)
    garbage = b"\xc3\x01" + b"\x00" * 8 + b"\x01\x02"
    offset = send(bootstrap, ledger, garbage)
    with pytest.raises(SerdeError) as caught:
        decode_plain(garbage)
    code, problems, _ = verify(bootstrap, ledger, checkpoints, trusted)
    assert (code, problems) == (1, [f"offset {offset}: corrupt bytes, not a ledger entry: {caught.value}"])


def test_an_unsigned_ledger_is_refused_unless_allowed(bootstrap, make_topic, keys):
    _, _, trusted = keys
    ledger, checkpoints = make_topic("ledger"), make_topic("checkpoints")
    writer = LedgerWriter({"bootstrap_servers": bootstrap}, ledger, None)  # a router given no key
    writer.append(1_700_000_000_000, "silence.expired", "s0", "router", {"id": "s0"})
    writer.close()
    code, problems, _ = verify(bootstrap, ledger, checkpoints, trusted)
    refused = "not signed: refused (an unsigned ledger verifies only with --allow-unsigned)"
    assert (code, problems) == (1, [f"offset 0 (sequence 0): {refused}"])
    args = ["ledger", "verify", "-b", bootstrap, "--topic", ledger, "--checkpoints-topic", checkpoints]
    allowed = CliRunner().invoke(app, [*args, "--allow-unsigned"])
    assert allowed.exit_code == 0, allowed.stderr
    assert allowed.stdout.endswith(", the first 1 unsigned (--allow-unsigned)\n")


def test_the_router_starts_on_a_broken_ledger_and_goes_on_from_its_last_good_entry(bootstrap, make_topic):
    """It refused to start on one badly chained entry (a second genesis): now it skips it."""
    from tocsin.router.config import load_router_config
    from tocsin.router.service import Router

    topics = {name: make_topic(name) for name in ("alerts", "ledger", "notifications", "responses")}
    client = {"bootstrap_servers": bootstrap}
    writer = LedgerWriter(client, topics["ledger"], None)
    good = writer.append(1_700_000_000_000, "silence.expired", "s1", "operator", {"id": "s1"})
    writer.close()
    second_genesis = chain(None, 1_700_000_001_000, "silence.expired", "s2", "someone", {"id": "s2"})
    send(bootstrap, topics["ledger"], encode(LEDGER_ENTRY, second_genesis.as_record()))
    config = load_router_config(Path(__file__).parents[2] / "router" / "routes.example.yaml")
    router = Router(config, client, topics)
    router.start()
    try:
        assert router.state.last == good
        with router.lock:
            router._append("silence.expired", "s3", "operator", {"id": "s3"})
    finally:
        router.close()
    entries = [r.item for r in read_records(client, topics["ledger"])]
    assert [(e.sequence, e.prev_hash) for e in entries[2:]] == [(1, good.hash)]  # after the good one


def test_a_forged_acknowledgement_neither_stops_an_escalation_nor_survives_a_restart(
    bootstrap,
    make_topic,
    start_pipeline,
    servers,  # noqa: F811
    tmp_path,
    keys,
):
    webhooks, _, smtp_port = servers
    key, key_file, trusted = keys
    topics = {name: make_topic(name) for name in ("alerts", "ledger", "notifications", "responses")}
    checkpoints = make_topic("checkpoints")
    tokens = {"igad": "igad-secret", "un": "un-secret"}
    config = tmp_path / "routes.yaml"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    router_config(config, webhooks.server_address[1], smtp_port, tokens, external_url=api)
    args = router_serve_args(
        config, bootstrap, port, topics, f"--ledger-key={key_file}", f"--checkpoints-topic={checkpoints}"
    )
    router = start_pipeline(*args)
    wait_for(lambda: _healthy(api) or not router.alive(), 60, message="router API")
    assert router.alive(), router.log_tail()

    alert_id = "attacks-on-civilians:SDN:2026-11-27T00:00Z"
    send(bootstrap, topics["alerts"], encode(default_registry().get("Alert"), an_alert(alert_id, "SDN")))
    wait_for(lambda: webhooks.at("/igad"), 30, message="the first notification")
    # The forger appends an acknowledgement by the next level's organisation, correctly chained onto the
    # ledger's last entry, unsigned; and one signed with a key of their own.
    client = {"bootstrap_servers": bootstrap}
    last = read_ledger(client, topics["ledger"])[-1]
    ack = {
        "kind": "ACKNOWLEDGED",
        "organisation": "un",
        "responder": "forger",
        "description": None,
        "reason": None,
        "referred_to": None,
    }
    forged = [
        chain(last, last.at + 1, "response", alert_id, "un/forger", ack),
        chain(last, last.at + 1, "response", alert_id, "un/forger", ack, generate()),
    ]
    offsets = [send(bootstrap, topics["ledger"], encode(LEDGER_ENTRY, f.as_record())) for f in forged]

    # The escalation comes all the same: the router never obeys what it did not sign.
    wait_for(lambda: escalations(webhooks, alert_id), 30, message="the escalation")
    assert not acknowledged(api, tokens["un"], alert_id)

    router.kill()
    restarted = start_pipeline(*args)
    wait_for(lambda: _healthy(api) or not restarted.alive(), 60, message="restarted router API")
    assert restarted.alive(), restarted.log_tail()
    assert not acknowledged(api, tokens["un"], alert_id)  # the forgery was skipped, not replayed
    before = len(escalations(webhooks, alert_id))
    wait_for(lambda: len(escalations(webhooks, alert_id)) > before, 30, message="the repeat escalation")
    assert "ledger record refused" in restarted.log_tail(200)

    code, problems, _ = verify(bootstrap, topics["ledger"], checkpoints, trusted)
    assert code == 1
    assert problems == [
        f"offset {offsets[0]} (sequence {last.sequence + 1}): not signed, after signed entries: forged",
        f"offset {offsets[1]} (sequence {last.sequence + 1}): signed with key {forged[1].key_id}, which is "
        "not a trusted key: forged",
    ]


def escalations(webhooks, alert_id: str) -> list[dict]:
    return [b for b in webhooks.at("/un") if b["groupKey"].startswith(f"escalation:{alert_id}:")]


def acknowledged(api: str, token: str, alert_id: str) -> bool:
    request = urllib.request.Request(f"{api}/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        alerts = json.loads(response.read())["alerts"]
    [alert] = [a for a in alerts if a["id"] == alert_id]
    return alert["acknowledged"] is not None


def test_a_quiet_routers_last_entries_are_checkpointed_without_waiting_for_a_next_one(
    bootstrap, make_topic, keys
):
    key, _, trusted = keys
    ledger, checkpoints = make_topic("ledger"), make_topic("checkpoints")
    client = {"bootstrap_servers": bootstrap}
    writer = LedgerWriter(client, ledger, None, key, checkpoints, every_s=0.5)
    try:
        head = writer.append(1_700_000_000_000, "silence.expired", "s0", "router", {"id": "s0"})
        made = wait_for(
            lambda: [r.item for r in read_records(client, checkpoints, "LedgerCheckpoint")],
            20,
            message="a checkpoint of the head",
        )
        assert [(c.sequence, c.hash, c.key_id) for c in made] == [(0, head.hash, key.id)]
        code, problems, out = verify(bootstrap, ledger, checkpoints, trusted)
        assert (code, problems) == (0, []) and out.endswith(
            "last checkpoint at sequence 0 (0 entries after it)\n"
        )
    finally:
        writer.close()
    assert len(read_records(client, checkpoints, "LedgerCheckpoint")) == 1  # the head had not moved


def test_a_router_given_a_key_signs_on_from_an_unsigned_ledger_only_when_told_to(bootstrap, make_topic, keys):
    """The upgrade: a ledger written before signing is refused by a router with a key, unless
    --allow-unsigned (load_trust, as `tocsin router serve` builds it); then its first signed entry
    follows the unsigned head, and `verify --allow-unsigned` passes."""
    from tocsin.router.config import load_router_config
    from tocsin.router.ledger_trust import load_trust
    from tocsin.router.service import Router

    _, key_file, trusted = keys
    topics = {name: make_topic(name) for name in ("alerts", "ledger", "notifications", "responses")}
    checkpoints = make_topic("checkpoints")
    client = {"bootstrap_servers": bootstrap}
    old = LedgerWriter(client, topics["ledger"], None)
    unsigned_head = old.append(1_700_000_000_000, "silence.expired", "s0", "operator", {"id": "s0"})
    old.close()
    config = load_router_config(Path(__file__).parents[2] / "router" / "routes.example.yaml")
    for allow in (False, True):
        router = Router(config, client, topics, ledger=load_trust(str(key_file), None, allow, checkpoints))
        router.start()
        router.close()
        assert router.state.last == (unsigned_head if allow else None), allow
    router = Router(config, client, topics, ledger=load_trust(str(key_file), None, True, checkpoints))
    router.start()
    try:
        with router.lock:
            first_signed = router._append("silence.expired", "s1", "operator", {"id": "s1"})
    finally:
        router.close()
    assert (first_signed.sequence, first_signed.prev_hash) == (1, unsigned_head.hash)
    args = [
        "ledger",
        "verify",
        "-b",
        bootstrap,
        "--topic",
        topics["ledger"],
        "--checkpoints-topic",
        checkpoints,
    ]
    result = CliRunner().invoke(app, [*args, "--trusted-keys", str(trusted), "--allow-unsigned"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith(
        f"ledger verified: 2 entries, last hash {first_signed.hash[:16]}, signed by"
    )
    assert ", the first 1 unsigned (--allow-unsigned); last checkpoint at sequence 1 " in result.stdout
