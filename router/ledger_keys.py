"""The ledger's keys: the router's Ed25519 signing key, and the public keys a verifier trusts.

The router signs every ledger entry and checkpoint with its private key; whoever verifies needs only the
public keys, listed by key id in a trusted keys file, so a key can be rotated (the new one added, the old
one kept for the entries it signed, with `until_sequence` once it is retired or known to be stolen).

A key id is the first 8 bytes of the SHA-256 of the raw public key, in hex: short enough to print on
every line, long enough that two keys of one deployment never share one by chance.

The signing key is one setting (`--ledger-key`, TOCSIN_LEDGER_KEY): the path of a PEM file (PKCS#8, as
`tocsin ledger keygen` or `openssl genpkey -algorithm ed25519` writes it), or the PEM text itself, for a
secret store that puts it in the environment. A path cannot start with "-----BEGIN", so the two never
mix.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PEM_START = "-----BEGIN"
KEY_SETTING = "--ledger-key (TOCSIN_LEDGER_KEY)"
TRUSTED_SETTING = "--trusted-keys (TOCSIN_LEDGER_TRUSTED_KEYS)"


class LedgerKeyError(ValueError):
    """A key setting or file tocsin cannot use; the message is the one line the operator reads."""


def raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    return hashlib.sha256(raw_public(public)).hexdigest()[:16]


@dataclass(frozen=True)
class SigningKey:
    private: Ed25519PrivateKey
    id: str

    @classmethod
    def of(cls, private: Ed25519PrivateKey) -> SigningKey:
        return cls(private, key_id(private.public_key()))

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def generate() -> SigningKey:
    return SigningKey.of(Ed25519PrivateKey.generate())


def private_pem(key: SigningKey) -> bytes:
    return key.private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_signing_key(setting: str) -> SigningKey:
    """The key the setting names (a PEM file's path, or PEM text), or LedgerKeyError with one line."""
    if setting.lstrip().startswith(PEM_START):
        text, where = setting.encode(), "the PEM text given"
    else:
        try:
            text, where = Path(setting).read_bytes(), setting
        except OSError as error:
            raise LedgerKeyError(f"error: {KEY_SETTING}: {setting}: {error.strerror}") from None
    try:
        private = serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError):  # not PEM, a damaged key, or one protected by a passphrase
        raise LedgerKeyError(
            f"error: {KEY_SETTING}: {where}: not an unencrypted PEM private key "
            "(`tocsin ledger keygen` makes one)"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise LedgerKeyError(
            f"error: {KEY_SETTING}: {where}: not an Ed25519 key (`tocsin ledger keygen` makes one)"
        )
    return SigningKey.of(private)


@dataclass(frozen=True)
class TrustedKey:
    id: str
    public: Ed25519PublicKey
    until_sequence: int | None = None  # retired: entries it signed after this sequence are refused
    comment: str = ""


class TrustedKeys(dict):
    """Key id -> TrustedKey: the keys whose signatures a verifier accepts."""

    def verifies(self, kid: str | None, message: bytes, signature_hex: str | None) -> str | None:
        """None when `signature_hex` is `kid`'s signature of `message`; otherwise why not."""
        key = self.get(kid)
        if key is None:
            return f"signed with key {kid}, which is not a trusted key"
        try:
            key.public.verify(bytes.fromhex(signature_hex or ""), message)
        except (InvalidSignature, ValueError):
            return f"its signature does not verify with key {kid}"
        return None

    @classmethod
    def of(cls, *keys: TrustedKey) -> TrustedKeys:
        return cls({k.id: k for k in keys})


def trusted_line(key: SigningKey, comment: str = "") -> dict:
    """The entry of a trusted keys file for this key (what keygen writes)."""
    out = {"id": key.id, "public_key": base64.b64encode(raw_public(key.public)).decode()}
    return out | ({"comment": comment} if comment else {})


def parse_trusted_keys(document, where: str) -> TrustedKeys:
    """A trusted keys file's document: `keys: [{id, public_key (base64 of the 32 raw bytes), comment,
    until_sequence}]`. Every problem listed (LedgerKeyError, one line each after the first)."""
    errors: list[str] = []
    keys: list[TrustedKey] = []
    items = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(items, list) or not items:
        errors.append("keys: a list of {id, public_key} with at least one key")
        items = []
    extra = sorted(set(document) - {"keys"}) if isinstance(document, dict) else []
    errors += [f"{name}: unknown key (only `keys`)" for name in extra]
    for i, item in enumerate(items):
        at = f"keys.{i}"
        if not isinstance(item, dict):
            errors.append(f"{at}: a mapping with id and public_key")
            continue
        unknown = sorted(set(item) - {"id", "public_key", "comment", "until_sequence"})
        errors += [f"{at}.{name}: unknown field" for name in unknown]
        try:
            raw = base64.b64decode(str(item.get("public_key", "")), validate=True)
            public = Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            errors.append(f"{at}.public_key: not the base64 of a 32-byte Ed25519 public key")
            continue
        # The id is written beside the key so a reader sees which key a line is; it must be that key's,
        # or a typo would make every entry of the key "not trusted" (or worse, trust under a wrong name).
        if item.get("id") != key_id(public):
            errors.append(f"{at}.id: {item.get('id')!r} is not its public key's id ({key_id(public)})")
        until = item.get("until_sequence")
        if until is not None and (not isinstance(until, int) or isinstance(until, bool) or until < 0):
            errors.append(f"{at}.until_sequence: a sequence number (0 or more)")
            until = None
        keys.append(TrustedKey(key_id(public), public, until, str(item.get("comment", ""))))
    if errors:
        raise LedgerKeyError("\n".join([f"{where}: {len(errors)} error(s)", *(f"  {e}" for e in errors)]))
    return TrustedKeys.of(*keys)


def load_trusted_keys(path: str | os.PathLike) -> TrustedKeys:
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise LedgerKeyError(f"error: {TRUSTED_SETTING}: {path}: {error.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError):
        raise LedgerKeyError(f"error: {TRUSTED_SETTING}: {path}: not a YAML file") from None
    return parse_trusted_keys(document, str(path))
