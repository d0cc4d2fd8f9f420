"""The intake's config: strict keys, every error with its path and an exact message, the example file,
tokens kept as digests, and `tocsin intake serve` refusing a bad or missing file in one clear line."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.connectors.intake import (
    EXAMPLE,
    SECRET_ENV,
    IntakeConfigError,
    authenticate,
    load_config,
    parse_config,
)
from tocsin.kafka.topics import INCIDENTS
from tocsin.organisations import token_digest
from tocsin.web.app import Problem

SECRET = "s" * 32
ALPHA = {"name": "org-a", "token_sha256": token_digest("alpha")}


@pytest.fixture(autouse=True)
def no_secret_in_the_environment(monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)


def errors_of(data, **overrides) -> list[str]:
    with pytest.raises(IntakeConfigError) as caught:
        parse_config(data, **overrides)
    return caught.value.errors


def test_the_example_config_loads_with_the_secret_from_the_environment(monkeypatch):
    with pytest.raises(IntakeConfigError) as caught:
        load_config(EXAMPLE)
    assert caught.value.errors == [
        "secret: Field required"
    ]  # the example leaves the secret to the environment
    monkeypatch.setenv(SECRET_ENV, "from-the-environment-0123456789abcdef")
    config = load_config(EXAMPLE)
    assert (config.host, config.port, config.topic) == ("127.0.0.1", 8080, INCIDENTS)
    assert [(o.name, o.revoked) for o in config.organisations] == [
        ("darfur-monitors", False),
        ("civil-society", False),
        ("former-partner", True),
    ]
    assert config.organisations[0].token_sha256 == token_digest("example-token-darfur-monitors")


def test_tokens_are_kept_as_digests_and_checked_per_organisation(tmp_path, monkeypatch):
    path = tmp_path / "intake.yaml"
    path.write_text(
        "secret: from-the-file-but-long-enough-0123456789\n"
        "organisations:\n"
        f"  - {{name: org-a, token_sha256: {token_digest('alpha')}}}\n"
        f"  - {{name: org-b, token_sha256: {token_digest('beta')}, revoked: true}}\n"
    )
    monkeypatch.setenv(SECRET_ENV, "from-the-environment-0123456789abcdef")
    config = load_config(path, port=0, topic=None)
    assert config.secret.get_secret_value() == "from-the-environment-0123456789abcdef"
    assert config.port == 0 and config.topic == INCIDENTS
    assert authenticate(config, "Bearer alpha") == ("org-a", token_digest("alpha"))
    assert authenticate(config, "bearer  alpha ") == ("org-a", token_digest("alpha"))
    for header, status in [(None, 401), ("Basic alpha", 401), ("Bearer gamma", 401), ("Bearer beta", 403)]:
        with pytest.raises(Problem) as caught:
            authenticate(config, header)
        assert caught.value.status == status


def test_unknown_keys_are_errors_listed_with_their_path():
    data = {"secret": SECRET, "colour": "red", "organisations": [ALPHA | {"admn": True}]}
    assert errors_of(data) == [
        "organisations.0.admn: Extra inputs are not permitted",
        "colour: Extra inputs are not permitted",
    ]


def test_every_error_of_the_config_is_listed_with_an_exact_message():
    data = {
        "secret": "short",
        "port": 70000,
        "organisations": [{"name": "a:b", "token_sha256": "abc"}, {"token_sha256": token_digest("x")}],
    }
    assert errors_of(data) == [
        "organisations.0.name: String should match pattern '^[a-z0-9][a-z0-9._-]{0,63}$'",
        "organisations.0.token_sha256: not a SHA-256 hex digest "
        "(tocsin router token or tocsin intake token prints one)",
        "organisations.1.name: Field required",
        "secret: should have at least 32 characters (e.g. openssl rand -hex 32)",
        "port: Input should be less than or equal to 65535",
    ]
    assert errors_of({"secret": SECRET, "organisations": [ALPHA, ALPHA | {"name": "org-b"}]}) == [
        "organisations: entries 0 and 1 have the same token_sha256"
    ]
    assert errors_of({"secret": SECRET, "organisations": []}) == [
        "organisations: List should have at least 1 item after validation, not 0"
    ]
    assert errors_of(
        {"secret": SECRET, "organisations": {"org-a": {"token_sha256": ALPHA["token_sha256"]}}}
    ) == ["organisations: Input should be a valid list"]
    assert errors_of(["secret", SECRET]) == ["<root>: the intake config must be a mapping"]


def test_a_bad_config_file_is_refused_in_one_clear_line_and_exit_status_1(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"secret: {SECRET}\nprot: 8080\norganisations:\n  - {{name: org-a, token_sha256: abc}}\n")
    result = CliRunner().invoke(app, ["intake", "serve", "--config", str(bad)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}: 2 error(s)",
        "  organisations.0.token_sha256: not a SHA-256 hex digest "
        "(tocsin router token or tocsin intake token prints one)",
        "  prot: Extra inputs are not permitted",
    ]
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)

    missing = tmp_path / "missing.yaml"
    result = CliRunner().invoke(app, ["intake", "serve", "--config", str(missing)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{missing}: 1 error(s)",
        "  <root>: cannot read missing.yaml: No such file or directory",
    ]
