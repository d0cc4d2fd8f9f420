"""The operator path with a broker that answers: the commands' client settings (KafkaSettings, with the
bootstrap timeout that makes an absent broker one line within seconds) work with the real clients."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tocsin.cli import app

pytestmark = pytest.mark.integration


def test_topics_create_and_ledger_verify_reach_the_broker(bootstrap, tmp_path):
    name = f"tocsin.operator_path.x{uuid.uuid4().hex[:8]}.v1"
    topics = tmp_path / "topics.yaml"
    topics.write_text(
        f"topics:\n  - {{name: {name}, schema: LedgerEntry, partitions: 1, retention_ms: -1, "
        "cleanup: delete, purpose: test}\n"
    )
    create = ["topics", "create", "-b", bootstrap, "--topics-file", str(topics)]
    first, again = CliRunner().invoke(app, create), CliRunner().invoke(app, create)
    assert (first.exit_code, again.exit_code) == (0, 0), first.stderr + again.stderr
    assert (first.stdout.split(), again.stdout.split()) == (["created", name], ["exists", name])
    verified = CliRunner().invoke(app, ["ledger", "verify", "-b", bootstrap, "--topic", name])
    assert verified.exit_code == 0, verified.stderr
    assert verified.stdout == "ledger verified: 0 entries, last hash -\n"


def test_the_router_refuses_a_broken_ledger_in_one_line(bootstrap, make_topic):
    from kafka import KafkaProducer

    from tocsin.router.ledger import LedgerWriter, chain
    from tocsin.serde.avro import default_registry, encode

    ledger = make_topic("ledger")
    client = {"bootstrap_servers": bootstrap}
    writer = LedgerWriter(client, ledger, None)
    writer.append(1_700_000_000_000, "silence.created", "s1", "operator", {"n": 1})
    writer.close()
    forged = chain(None, 1_700_000_001_000, "silence.created", "s2", "someone", {"n": 2})  # a second genesis
    producer = KafkaProducer(**client)
    producer.send(ledger, encode(default_registry().get("LedgerEntry"), forged.as_record()), partition=0).get(
        30
    )
    producer.close()
    config = Path(__file__).parents[2] / "router" / "routes.example.yaml"
    args = ["router", "serve", "--config", str(config), "-b", bootstrap, "--listen", "127.0.0.1:0"]
    result = CliRunner().invoke(app, [*args, "--ledger-topic", ledger])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"error: the ledger {ledger} does not verify (2 problem(s), the first: entry 1 (sequence 0): "
        "expected sequence 1: entries reordered or repeated); the router will not extend it: "
        "see `tocsin ledger verify`"
    ]
