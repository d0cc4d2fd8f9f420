"""What a reader of the ledger trusts, from its settings, and the ledger read back and checked with it.

The thin I/O shell around ledger_verify.check, for the router's start and `tocsin ledger verify`: the
settings loaded at once with every error listed, the two topics read, and the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tocsin.router.ledger import read_records
from tocsin.router.ledger_keys import (
    LedgerKeyError,
    SigningKey,
    TrustedKey,
    TrustedKeys,
    load_signing_key,
    load_trusted_keys,
)
from tocsin.router.ledger_verify import Verdict, check


@dataclass(frozen=True)
class LedgerTrust:
    key: SigningKey | None = None  # the router's own key: it signs with it, and trusts it
    keys: TrustedKeys = field(default_factory=TrustedKeys)  # every key whose entries are trusted
    allow_unsigned: bool = True  # trust an unsigned prefix (a ledger written before signing)
    checkpoints_topic: str | None = None  # None: no checkpoint is written or checked


# A router built without a trust (the unit tests, library use) writes and reads an unsigned ledger, as
# every router did before signing; `tocsin router serve` builds one from its settings.
UNSIGNED = LedgerTrust()


def load_trust(
    key_setting: str | None,
    trusted_keys: str | None,
    allow_unsigned: bool,
    checkpoints_topic: str | None,
) -> LedgerTrust:
    """The trust the settings describe; LedgerKeyError with every problem, one per line. A router's own
    key is trusted without being listed; a verifier (no key) trusts only the file's keys."""
    errors: list[str] = []
    key, keys = None, TrustedKeys()
    if key_setting:
        try:
            key = load_signing_key(key_setting)
        except LedgerKeyError as error:
            errors.append(str(error))
    if trusted_keys:
        try:
            keys = load_trusted_keys(trusted_keys)
        except LedgerKeyError as error:
            errors.append(str(error))
    if errors:
        raise LedgerKeyError("\n".join(errors))
    if key is not None and key.id not in keys:
        keys = TrustedKeys({**keys, key.id: TrustedKey(key.id, key.public, comment="the router's own")})
    return LedgerTrust(key, keys, allow_unsigned, checkpoints_topic)


def read_checked(client: dict, ledger_topic: str, trust: LedgerTrust) -> Verdict:
    """The ledger topic and its checkpoints read, and checked; a checkpoints topic that does not exist is
    a problem only for a signed ledger (whose cut tail it would have shown)."""
    entries = read_records(client, ledger_topic)
    checkpoints, missing = [], None
    if trust.checkpoints_topic:
        try:
            checkpoints = read_records(client, trust.checkpoints_topic, "LedgerCheckpoint")
        except RuntimeError as error:  # read_topic: the topic does not exist
            missing = str(error)
    verdict = check(entries, trust.keys, checkpoints, trust.allow_unsigned)
    if missing and verdict.signed_by:
        verdict.problems.append(f"checkpoints: {missing}; a cut tail of the ledger cannot be found")
    return verdict
