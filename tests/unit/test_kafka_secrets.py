"""Kafka secrets come from files or the environment, never a command line, and never leave in the clear:
not in `ps`, not in a Beam job's options or pickled DoFns, not in a logged client config. The SASL, TLS
and OAUTHBEARER settings are checked at load, every problem in one line."""

from __future__ import annotations

import base64
import bz2
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from pydantic import ValidationError
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.config import KafkaSettings
from tocsin.credentials import Secret, SecretError
from tocsin.oidc import ClientCredentials
from tocsin.pipelines.io.consumer import librdkafka_config
from tocsin.pipelines.io.kafka_sink import _Write
from tocsin.pipelines.options import JobArgumentParser, KafkaOptions, job_options, parse_job_args
from tocsin.telemetry.logging import configure_logging, get_logger
from tocsin.validation import error_messages

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _no_kafka_environment(monkeypatch):
    for name in KafkaSettings.model_fields:
        monkeypatch.delenv(f"TOCSIN_KAFKA_{name.upper()}", raising=False)


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "kafka-password"
    path.write_text(PASSWORD + "\n")  # as `echo ... > file` writes it
    return path


def scram(**more) -> KafkaSettings:
    return KafkaSettings(
        security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username="tocsin", **more
    )


def problems(**settings) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        KafkaSettings(**settings)
    return error_messages(raised.value)


# -- where a secret comes from -----------------------------------------------------------------------


def test_the_password_is_read_from_its_file_without_the_line_break(password_file):
    client = scram(sasl_password_file=password_file).client_config()
    assert client["sasl_plain_password"] == PASSWORD
    assert client["sasl_plain_username"] == "tocsin" and client["sasl_mechanism"] == "SCRAM-SHA-512"


def test_the_password_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD", PASSWORD)
    password = scram().client_config()["sasl_plain_password"]
    assert password == PASSWORD and password.source == "env:TOCSIN_KAFKA_SASL_PASSWORD"


def test_a_logged_client_config_shows_where_the_secret_is_not_what_it_is(password_file):
    client = scram(sasl_password_file=password_file).client_config()
    assert PASSWORD not in repr(client) and PASSWORD not in f"{client}"
    assert repr(client["sasl_plain_password"]) == f"Secret(file:{password_file})"
    assert PASSWORD not in repr(scram(sasl_password_file=password_file))  # pydantic's own repr neither


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_a_log_line_given_a_secret_shows_where_it_is_read(password_file, capsys, fmt):
    client = scram(sasl_password_file=password_file).client_config()
    configure_logging(fmt, "info")
    try:  # a JSON renderer would write a str subclass as its text: the processor stops it
        get_logger(stage="test").warning("connecting", client=client, password=client["sasl_plain_password"])
    finally:
        configure_logging("console", "info")
    logged = capsys.readouterr().err
    assert PASSWORD not in logged and logged.count(f"Secret(file:{password_file})") == 2


def test_a_pickled_client_config_holds_the_file_and_reads_it_again(password_file):
    shipped = pickle.dumps(scram(sasl_password_file=password_file).client_config())
    assert PASSWORD.encode() not in shipped and str(password_file).encode() in shipped
    password_file.write_text("rotated\n")  # a worker reads the file as it is where it runs
    assert pickle.loads(shipped)["sasl_plain_password"] == "rotated"
    password_file.unlink()
    with pytest.raises(SecretError) as raised:
        pickle.loads(shipped)
    assert str(raised.value) == (
        f"{password_file}: No such file or directory (a worker needs the secret where the job's process "
        "read it)"
    )


def test_a_beam_dofn_with_the_client_config_is_pickled_without_the_secret(password_file, monkeypatch):
    # What the runner and its workers receive: the sink's DoFn as Beam's pickler writes it.
    monkeypatch.setenv("TOCSIN_KAFKA_SSL_PASSWORD", "key-passphrase")
    client = scram(sasl_password_file=password_file, ssl_keyfile="/k.pem").client_config()
    shipped = pickler.dumps(_Write(client, "tocsin.x.v1"))
    packed = base64.b64decode(shipped)  # Beam's pickler compresses (zlib, or bz2 for large ones)
    inner = zlib.decompress(packed) if packed[:1] == b"x" else bz2.decompress(packed)
    assert PASSWORD.encode() not in inner and b"key-passphrase" not in inner
    assert str(password_file).encode() in inner and b"TOCSIN_KAFKA_SSL_PASSWORD" in inner
    worker = pickler.loads(shipped)  # a worker reads them again
    assert (
        worker.client["sasl_plain_password"] == PASSWORD and worker.client["ssl_password"] == "key-passphrase"
    )


def test_a_jobs_pipeline_options_hold_no_secret(password_file, monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SSL_PASSWORD", "key-passphrase")
    parser = JobArgumentParser(prog="job")
    flags = [
        "--kafka-security-protocol=SASL_SSL",
        "--kafka-sasl-mechanism=PLAIN",
        "--kafka-sasl-username=tocsin",
        f"--kafka-sasl-password-file={password_file}",
        "--kafka-ssl-keyfile=/k.pem",
    ]
    options, _, client = job_options(parser, parse_job_args(parser, flags)[1], streaming=False)
    assert client["sasl_plain_password"] == PASSWORD and client["ssl_password"] == "key-passphrase"
    shown = repr(options.get_all_options(retain_unknown_options=True))
    assert PASSWORD not in shown and "key-passphrase" not in shown
    assert str(password_file) in shown


def test_the_key_password_and_the_token_provider_reach_librdkafka(tmp_path, monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SSL_PASSWORD", "key-passphrase")
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", "client-secret")
    settings = KafkaSettings(
        security_protocol="SASL_SSL",
        sasl_mechanism="OAUTHBEARER",
        sasl_oauthbearer_token_endpoint_url="https://idp.example/token",
        sasl_oauthbearer_client_id="tocsin-job",
        ssl_keyfile=tmp_path / "k.pem",
    )
    client = settings.client_config()
    provider = client["sasl_oauth_token_provider"]
    assert isinstance(provider, ClientCredentials) and provider.client_id == "tocsin-job"
    assert client["ssl_password"] == "key-passphrase"
    config = librdkafka_config(client)
    assert config["oauth_cb"] is provider  # the one provider of both clients
    assert config["ssl.key.password"] == "key-passphrase" and config["sasl.mechanism"] == "OAUTHBEARER"
    assert "client-secret" not in repr(client)


# -- never on the command line -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flag",
    ["--kafka-sasl-password", "--kafka_sasl_password", "--kafka-ssl-password"],
)
def test_a_job_refuses_a_secret_on_its_command_line_in_one_line(flag, capsys):
    with pytest.raises(SystemExit) as ended:
        parse_job_args(
            JobArgumentParser(prog="tocsin pipeline window-count"), ["--input-topic=t", f"{flag}=x"]
        )
    assert ended.value.code == 2
    name = flag.removeprefix("--kafka").strip("-_").replace("-", "_").upper()
    assert capsys.readouterr().err == (
        f"tocsin pipeline window-count: error: {flag}: a secret is never taken on the command line (ps shows "
        f"it to every user); give its file, TOCSIN_KAFKA_{name}_FILE=PATH (a job's --kafka-"
        f"{name.lower().replace('_', '-')}-file PATH), or TOCSIN_KAFKA_{name}\n"
    )


def test_the_space_form_is_refused_too_and_the_file_flag_is_not(password_file, capsys):
    parser = JobArgumentParser(prog="job")
    with pytest.raises(SystemExit):
        parse_job_args(parser, ["--kafka-sasl-oauthbearer-client-secret", "x"])
    assert "--kafka-sasl-oauthbearer-client-secret: a secret is never taken" in capsys.readouterr().err
    _, rest = parse_job_args(parser, [f"--kafka-sasl-password-file={password_file}"])
    assert rest == [f"--kafka-sasl-password-file={password_file}"]


def test_a_secret_flag_is_no_job_option_and_its_file_is():
    parser = JobArgumentParser(prog="job")
    KafkaOptions._add_argparse_args(parser)
    flags = {flag for action in parser._actions for flag in action.option_strings}
    assert {"--kafka-sasl-password-file", "--kafka-ssl-password-file"} <= flags
    assert "--kafka-sasl-oauthbearer-client-secret-file" in flags
    assert (
        not {"--kafka-sasl-password", "--kafka-ssl-password", "--kafka-sasl-oauthbearer-client-secret"}
        & flags
    )
    # Beam itself would keep an unknown flag, and ship it: the refusal comes before Beam sees it.
    kept = PipelineOptions(["--kafka-sasl-password=x"]).get_all_options(retain_unknown_options=True)
    assert kept.get("kafka_sasl_password") == "x"


def test_the_tocsin_command_refuses_a_secret_on_its_command_line():
    result = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "topics", "create", "--kafka-sasl-password", "x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_KAFKA_")},
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "tocsin: error: --kafka-sasl-password: a secret is never taken on the command line (ps shows it to "
        "every user); give its file, TOCSIN_KAFKA_SASL_PASSWORD_FILE=PATH (a job's "
        "--kafka-sasl-password-file PATH), or TOCSIN_KAFKA_SASL_PASSWORD"
    ]


# -- checked at load, every problem listed ---------------------------------------------------------------


def test_a_password_mechanism_needs_a_user_and_a_password():
    assert problems(security_protocol="SASL_SSL", sasl_mechanism="PLAIN") == [
        "<root>: sasl_username: PLAIN needs it; sasl_password: PLAIN needs it, from sasl_password_file or "
        "TOCSIN_KAFKA_SASL_PASSWORD"
    ]


def test_a_secret_file_that_cannot_be_read_is_named(tmp_path):
    (tmp_path / "empty").write_text("\n")
    assert problems(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password_file=tmp_path / "absent",
        ssl_password_file=tmp_path / "empty",
    ) == [
        f"<root>: sasl_password_file: {tmp_path / 'absent'}: No such file or directory; "
        f"ssl_password_file: {tmp_path / 'empty'}: empty"
    ]


def test_a_secret_given_twice_is_refused(password_file, monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD", "other")
    assert problems(
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password_file=password_file,
    ) == ["<root>: sasl_password: given by both TOCSIN_KAFKA_SASL_PASSWORD and sasl_password_file; give one"]


def test_an_empty_secret_variable_is_refused(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD", "")
    assert problems(security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u") == [
        "<root>: sasl_password: TOCSIN_KAFKA_SASL_PASSWORD is empty"
    ]


def test_oauthbearer_needs_its_endpoint_client_and_secret():
    assert problems(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER") == [
        "<root>: sasl_oauthbearer_token_endpoint_url: OAUTHBEARER needs it; sasl_oauthbearer_client_id: "
        "OAUTHBEARER needs it; sasl_oauthbearer_client_secret: OAUTHBEARER needs it, from "
        "sasl_oauthbearer_client_secret_file or TOCSIN_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET"
    ]


def test_oauthbearer_refuses_to_send_its_secret_in_the_clear(monkeypatch):
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET", "s")
    oauth = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauthbearer_client_id": "c",
    }
    assert problems(**oauth, sasl_oauthbearer_token_endpoint_url="http://idp.example/token") == [
        "<root>: sasl_oauthbearer_token_endpoint_url: http://idp.example/token: http would send the client "
        "secret in the clear; use https (http: loopback only)"
    ]
    assert problems(**oauth, sasl_oauthbearer_token_endpoint_url="idp.example/token") == [
        "<root>: sasl_oauthbearer_token_endpoint_url: 'idp.example/token': not an http(s) URL"
    ]
    local = KafkaSettings(**oauth, sasl_oauthbearer_token_endpoint_url="http://127.0.0.1:8080/token")
    assert local.client_config()["sasl_oauth_token_provider"].endpoint == "http://127.0.0.1:8080/token"


def test_gssapi_is_refused_with_its_reason():
    assert problems(security_protocol="SASL_SSL", sasl_mechanism="GSSAPI") == [
        "<root>: sasl_mechanism: GSSAPI (Kerberos) is not supported: the jobs' librdkafka is built without "
        "it; use SCRAM-SHA-512, PLAIN over SASL_SSL, or OAUTHBEARER"
    ]


def test_the_bundled_librdkafka_indeed_has_no_gssapi():
    # The reason given above, asked of the library: if a later wheel has GSSAPI, this fails and says so.
    from confluent_kafka import Consumer, KafkaException

    with pytest.raises(KafkaException, match="No provider for SASL mechanism GSSAPI"):
        Consumer({"group.id": "g", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "GSSAPI"})


def test_a_mechanism_and_a_protocol_go_together():
    assert problems(sasl_mechanism="PLAIN") == [
        "<root>: sasl_mechanism: PLAIN needs security_protocol SASL_PLAINTEXT or SASL_SSL"
    ]
    assert problems(security_protocol="SASL_PLAINTEXT") == [
        "<root>: security_protocol: SASL_PLAINTEXT needs sasl_mechanism"
    ]


def test_a_command_says_every_problem_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("TOCSIN_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("TOCSIN_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "absent"))
    result = CliRunner().invoke(app, ["topics", "create"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: Kafka settings (TOCSIN_KAFKA_*): sasl_password_file: "
        f"{tmp_path / 'absent'}: No such file or directory; sasl_username: SCRAM-SHA-256 needs it"
    ]


def test_a_job_says_every_problem_in_one_line(capsys):
    parser = JobArgumentParser(prog="tocsin pipeline alerts")
    flags = ["--kafka-security-protocol=SASL_SSL", "--kafka-sasl-mechanism=OAUTHBEARER"]
    flags += [
        "--kafka-sasl-oauthbearer-client-id=c",
        "--kafka-sasl-oauthbearer-token-endpoint-url=https://i/t",
    ]
    with pytest.raises(SystemExit) as ended:
        job_options(parser, parse_job_args(parser, flags)[1], streaming=False)
    assert ended.value.code == 1
    assert capsys.readouterr().err == (
        "tocsin pipeline alerts: error: Kafka settings: sasl_oauthbearer_client_secret: OAUTHBEARER needs "
        "it, from sasl_oauthbearer_client_secret_file or TOCSIN_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET\n"
    )


def test_a_secret_is_a_str_the_clients_take_as_any():
    secret = Secret("pw", "env:X")
    assert "\0".join(["u", "u", secret]).encode() == b"u\0u\0pw"  # kafka-python's SASL PLAIN message
    assert str(secret) == "pw" and type(str(secret)) is str  # what librdkafka's config is given
