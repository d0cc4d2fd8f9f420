"""The ledger's keys: the one signing-key setting (a file or the PEM itself) and the trusted keys file,
each refused in exact words; `tocsin ledger keygen` writes a key only its owner reads, and its entry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.router.ledger import chain, parse_record
from tocsin.router.ledger_keys import (
    LedgerKeyError,
    generate,
    load_signing_key,
    load_trusted_keys,
    private_pem,
    trusted_line,
)
from tocsin.router.ledger_trust import load_trust
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.avro import Schema, encode

SETTING = "error: --ledger-key (TOCSIN_LEDGER_KEY)"


def refusal(call, *args) -> str:
    with pytest.raises(LedgerKeyError) as caught:
        call(*args)
    return str(caught.value)


def test_the_key_from_a_file_or_from_the_pem_text_is_the_same_key(tmp_path):
    key = generate()
    path = tmp_path / "ledger.key"
    path.write_bytes(private_pem(key))
    assert load_signing_key(str(path)).id == load_signing_key(private_pem(key).decode()).id == key.id


def test_an_unusable_key_setting_is_one_line(tmp_path):
    assert refusal(load_signing_key, str(tmp_path / "nope.key")) == (
        f"{SETTING}: {tmp_path / 'nope.key'}: No such file or directory"
    )
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    assert refusal(load_signing_key, str(junk)) == (
        f"{SETTING}: {junk}: not an unencrypted PEM private key (`tocsin ledger keygen` makes one)"
    )
    ec = generate_private_key(SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert refusal(load_signing_key, ec.decode()) == (
        f"{SETTING}: the PEM text given: not an Ed25519 key (`tocsin ledger keygen` makes one)"
    )


def test_a_trusted_keys_file_lists_every_error(tmp_path):
    good, other = trusted_line(generate()), trusted_line(generate())
    path = tmp_path / "trusted.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {**good, "id": other["id"]},
                    {"id": "x", "public_key": "AAAA"},
                    {**good, "until_sequence": -1, "colour": "red"},
                ],
                "extra": 1,
            }
        )
    )
    assert refusal(load_trusted_keys, path).splitlines() == [
        f"{path}: 5 error(s)",
        "  extra: unknown key (only `keys`)",
        f"  keys.0.id: {other['id']!r} is not its public key's id ({good['id']})",
        "  keys.1.public_key: not the base64 of a 32-byte Ed25519 public key",
        "  keys.2.colour: unknown field",
        "  keys.2.until_sequence: a sequence number (0 or more)",
    ]


def test_key_and_trusted_keys_problems_are_listed_together(tmp_path):
    empty = tmp_path / "trusted.yaml"
    empty.write_text("keys: []\n")
    assert refusal(load_trust, str(tmp_path / "k.pem"), str(empty), False, None).splitlines() == [
        f"{SETTING}: {tmp_path / 'k.pem'}: No such file or directory",
        f"{empty}: 1 error(s)",
        "  keys: a list of {id, public_key} with at least one key",
    ]


def test_a_router_trusts_its_own_key_without_a_file(tmp_path):
    key = generate()
    trust = load_trust(private_pem(key).decode(), None, False, "cp")
    assert list(trust.keys) == [key.id] and trust.key.id == key.id and not trust.allow_unsigned


def test_keygen_writes_a_private_key_its_owner_alone_reads_and_the_trusted_entry(tmp_path):
    key_file, trusted = tmp_path / "router.key", tmp_path / "trusted.yaml"
    runner = CliRunner()
    first = runner.invoke(app, ["ledger", "keygen", str(key_file), "--trusted-keys", str(trusted)])
    assert first.exit_code == 0, first.output
    key = load_signing_key(str(key_file))
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert first.stdout.splitlines()[0] == f"key id {key.id}: private key in {key_file}"
    second = runner.invoke(
        app,
        ["ledger", "keygen", str(tmp_path / "next.key"), "--trusted-keys", str(trusted), "--comment", "2027"],
    )
    assert second.exit_code == 0, second.output
    rotated = load_signing_key(str(tmp_path / "next.key"))
    assert list(load_trusted_keys(trusted)) == [key.id, rotated.id]  # the old key kept, for its entries
    again = runner.invoke(app, ["ledger", "keygen", str(key_file)])
    assert (again.exit_code, again.stderr) == (
        1,
        f"error: {key_file}: exists; a new key goes to a new file\n",
    )
    assert load_signing_key(str(key_file)).id == key.id


def test_an_entry_written_before_signing_still_reads():
    v1 = Schema.from_file(SCHEMA_DIR / "previous" / "ledger_entry.1.avsc")
    entry = chain(None, 1_700_000_000_000, "silence.expired", "s", "router", {})
    record = {k: v for k, v in entry.as_record().items() if k not in ("key_id", "signature")}
    assert parse_record(0, encode(v1, record), "LedgerEntry").item == entry


def test_router_serve_and_verify_refuse_an_unusable_key_setting_in_one_line(tmp_path):
    routes = str(Path(__file__).parents[2] / "router" / "routes.example.yaml")
    missing = tmp_path / "nope.key"
    serve = ["router", "serve", "--config", routes, "-b", "127.0.0.1:9", "--ledger-key", str(missing)]
    result = CliRunner().invoke(app, serve)
    assert (result.exit_code, result.stderr) == (1, f"{SETTING}: {missing}: No such file or directory\n")
    verify = ["ledger", "verify", "-b", "127.0.0.1:9", "--trusted-keys", str(missing)]
    result = CliRunner().invoke(app, verify)
    assert (result.exit_code, result.stderr) == (
        1,
        f"error: --trusted-keys (TOCSIN_LEDGER_TRUSTED_KEYS): {missing}: No such file or directory\n",
    )
