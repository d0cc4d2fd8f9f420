"""The `tocsin` command line lists its commands as they arrive."""

from __future__ import annotations

from typer.testing import CliRunner

from tocsin.cli import app


def test_help_lists_the_commands():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("topics", "schemas", "kafka", "pipeline", "connect", "intake", "demo"):
        assert command in result.stdout
    connect = CliRunner().invoke(app, ["connect", "--help"])
    for command in ("ucdp", "gdelt", "rss", "reliefweb"):
        assert command in connect.stdout


def test_intake_token_prints_a_token_and_its_digest():
    import hashlib

    result = CliRunner().invoke(app, ["intake", "token"])
    token = result.stdout.split("token:", 1)[1].split()[0]
    digest = result.stdout.split("token_sha256:", 1)[1].split()[0]
    assert hashlib.sha256(token.encode()).hexdigest() == digest and len(token) >= 32
