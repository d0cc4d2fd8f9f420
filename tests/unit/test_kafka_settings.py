"""One settings model for Kafka (tocsin.config.KafkaSettings): one default, one `--bootstrap-servers` for
the typer command lines, the Beam jobs' Kafka options derived from it, topic names from the constants."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from typer.testing import CliRunner

from tocsin import cli_options
from tocsin.cli import app
from tocsin.config import KAFKA_SECRETS, KafkaSettings
from tocsin.kafka.topics import TOPIC_NAME
from tocsin.pipelines.io.consumer import librdkafka_config
from tocsin.pipelines.options import (
    JOB_KAFKA_FIELDS,
    JobArgumentParser,
    KafkaOptions,
    kafka_client_config,
    parse_job_args,
)

ROOT = Path(__file__).resolve().parents[2]


def job_client(*flags: str) -> dict:
    return kafka_client_config(PipelineOptions(list(flags)).view_as(KafkaOptions))


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch):
    for name in KafkaSettings.model_fields:
        monkeypatch.delenv(f"TOCSIN_KAFKA_{name.upper()}", raising=False)


def test_one_default_for_the_commands_and_the_jobs():
    assert KafkaSettings().bootstrap_servers == cli_options.DEFAULT_BOOTSTRAP == "127.0.0.1:9092"
    assert cli_options.kafka_settings(None).client_config()["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert job_client()["bootstrap_servers"] == ["127.0.0.1:9092"]  # not Beam's localhost:9092


def test_the_three_command_lines_share_one_bootstrap_option():
    from tocsin.connectors import cli as connectors_cli
    from tocsin.router import cli as router_cli

    assert connectors_cli.Bootstrap is router_cli.Bootstrap is cli_options.Bootstrap
    for command in (["topics", "create"], ["connect", "ucdp"], ["router", "serve"], ["ledger", "verify"]):
        shown = " ".join(CliRunner().invoke(app, [*command, "--help"]).stdout.replace("│", " ").split())
        assert "--bootstrap-servers" in shown and "127.0.0.1:9092" in shown, command


def test_every_connection_setting_is_a_job_option_with_the_models_choices(tmp_path):
    # The secrets are not options: their files are (and their environment variables).
    assert set(JOB_KAFKA_FIELDS) == set(KafkaSettings.model_fields) - {"bootstrap_timeout", *KAFKA_SECRETS}
    (tmp_path / "password").write_text("p\n")
    client = job_client(
        "--bootstrap-servers=k1:9092,k2:9092",
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-mechanism=SCRAM-SHA-512",
        "--kafka-sasl-username=u",
        f"--kafka-sasl-password-file={tmp_path / 'password'}",
        "--kafka-ssl-cafile=/ca.pem",
        "--kafka-client-id=job",
    )
    assert client == {
        "bootstrap_servers": ["k1:9092", "k2:9092"],
        "security_protocol": "SASL_SSL",
        "client_id": "job",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u",
        "sasl_plain_password": "p",
        "ssl_cafile": "/ca.pem",
        "bootstrap_timeout_ms": 5000,
    }
    parser = JobArgumentParser(prog="job")
    KafkaOptions._add_argparse_args(parser)
    choices = {a.dest: a.choices for a in parser._actions}
    assert choices["kafka_security_protocol"] == ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]


def test_jobs_read_the_environment_as_the_commands_do_and_a_flag_wins(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD", "secret")
    assert job_client()["bootstrap_servers"] == ["env:9092"]
    assert job_client("--bootstrap-servers", "flag:9092")["bootstrap_servers"] == ["flag:9092"]
    assert cli_options.kafka_settings(None).bootstrap_servers == "env:9092"


def test_the_commands_clients_give_up_on_an_absent_broker_after_the_bootstrap_timeout(monkeypatch):
    assert KafkaSettings().client_config()["bootstrap_timeout_ms"] == 5000
    monkeypatch.setenv("TOCSIN_KAFKA_BOOTSTRAP_TIMEOUT", "30s")
    assert KafkaSettings().client_config()["bootstrap_timeout_ms"] == 30_000
    # the jobs' kafka-python clients give up as soon; their librdkafka source leaves the setting out
    assert job_client()["bootstrap_timeout_ms"] == 30_000
    assert "bootstrap_timeout_ms" not in str(librdkafka_config(job_client()))


def test_beams_own_spelling_of_the_flag_is_not_lost():
    # Beam declares --bootstrap_servers for its Kafka Streams runner; KafkaOptions would not see it
    _, rest = parse_job_args(JobArgumentParser(prog="job"), ["--bootstrap_servers=k:1", "--streaming"])
    assert job_client(*rest)["bootstrap_servers"] == ["k:1"]


def test_a_bad_environment_value_is_one_line(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SECURITY_PROTOCOL", "TLS")
    result = CliRunner().invoke(app, ["topics", "create"])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith(
        "error: Kafka settings (TOCSIN_KAFKA_*): security_protocol: Input should be 'PLAINTEXT'"
    )


# Files whose option and argument defaults name topics: by the tocsin.kafka.topics constants only.
NAMING_TOPICS = [
    "tocsin/cli/__init__.py",
    "tocsin/cli/demo.py",
    "tocsin/cli/demo_stages.py",
    "connectors/cli.py",
    "router/cli.py",
    "pipelines/options.py",
    "pipelines/indicators/job.py",
    "pipelines/rules/job.py",
    "pipelines/window_count.py",
]


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef))]
    return {
        id(node.body[0].value)
        for node in nodes
        if node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
    }


@pytest.mark.parametrize("path", NAMING_TOPICS)
def test_topic_names_come_from_the_constants(path):
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    literals = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
    ]
    named = [
        text for text in literals if any(TOPIC_NAME.match(word.strip(".,;:()")) for word in text.split())
    ]
    assert named == []


def test_the_jobs_take_the_short_bootstrap_flag_as_every_command_does():
    assert job_client("-b", "k:1")["bootstrap_servers"] == ["k:1"]


def test_a_job_retries_a_broker_that_does_not_answer_at_start_then_carries_on(capsys):
    from kafka.errors import KafkaTimeoutError

    from tocsin.pipelines.options import when_kafka_answers

    attempts = []

    def read():
        attempts.append(len(attempts))
        if len(attempts) < 3:  # a broker restarting: two refusals, then an answer
            raise KafkaTimeoutError("Unable to bootstrap from [('k', 1)]")
        return "read"

    assert when_kafka_answers({"bootstrap_servers": ["k:1"]}, 30, read, "the commit") == "read"
    assert len(attempts) == 3
    logged = capsys.readouterr()
    assert (logged.out + logged.err).count("kafka not answering, retrying") == 2


def test_a_job_gives_up_after_its_broker_wait_in_one_line(capsys):
    from kafka.errors import KafkaTimeoutError

    from tocsin.pipelines.options import when_kafka_answers

    def never():
        raise KafkaTimeoutError("Unable to bootstrap from [('k', 1)]")

    with pytest.raises(SystemExit) as ended:
        when_kafka_answers({"bootstrap_servers": ["k:1"]}, 0, never, "the commit")
    assert ended.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1].startswith("error: cannot reach Kafka at k:1")
