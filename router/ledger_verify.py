"""Which of a ledger's entries to trust, and what is wrong with the others: a pure function, `check`.

Both `tocsin ledger verify` and the router (reading its ledger back at start) call it. An entry is
trusted when it decodes, its hash is its content's, a trusted key signed that hash, and it follows the
last trusted entry (the next sequence, that entry's hash as prev_hash). Any other record is skipped and
reported, one line each, at its offset in the topic: whoever can write to the topic can add records, but
not make the router obey them, nor stop it by adding them (it used to refuse to start on one bad entry).

Then every valid checkpoint must name an entry of the trusted chain with the same hash: a ledger cut
after a checkpoint, or rewritten before one, does not. Entries after the last checkpoint are covered by
nothing but the chain: cut, they are not missed (see the README's threat model).

Unsigned entries are refused, unless `allow_unsigned`: then they are trusted on their chain alone, and only
before the first signed entry (the ledger a router wrote before it had a key; the first signed entry's
prev_hash seals them). After a signed entry, an unsigned one is always a forgery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from tocsin.router.ledger import (
    ENTRY_SIGNED,
    GENESIS,
    Checkpoint,
    Entry,
    Read,
    checkpoint_message,
    rehashed,
)
from tocsin.router.ledger_keys import TrustedKeys


@dataclass
class Verdict:
    trusted: list[Entry] = field(default_factory=list)  # the chain to rebuild state from, in order
    problems: list[str] = field(default_factory=list)  # one line each, in offset order
    checkpoint: Checkpoint | None = None  # the last valid checkpoint
    signed_by: set = field(default_factory=set)  # key ids of the trusted entries' signatures
    unsigned: int = 0  # trusted entries without a signature (an adopted unsigned prefix)

    @property
    def ok(self) -> bool:
        return not self.problems


def check(
    entries: Sequence[Read],
    keys: TrustedKeys,
    checkpoints: Sequence[Read] = (),
    allow_unsigned: bool = False,
) -> Verdict:
    verdict = Verdict()
    for read in entries:
        problem = _refusal(read, verdict, keys, allow_unsigned)
        if problem is None:
            entry = read.item
            verdict.trusted.append(entry)
            if entry.signature is None:
                verdict.unsigned += 1
            else:
                verdict.signed_by.add(entry.key_id)
        else:
            verdict.problems.append(problem)
    _against_checkpoints(verdict, checkpoints, keys)
    return verdict


def _where(read: Read) -> str:
    entry = read.item
    return f"offset {read.offset}" + (f" (sequence {entry.sequence})" if entry is not None else "")


def _refusal(read: Read, verdict: Verdict, keys: TrustedKeys, allow_unsigned: bool) -> str | None:
    """Why the record is not trusted, in one line that says where; None when it is."""
    where, entry = _where(read), read.item
    if entry is None:
        return f"{where}: corrupt bytes, not a ledger entry: {read.error}"
    if rehashed(entry) != entry.hash:
        return f"{where}: its content does not match its hash: edited"
    if entry.signature is None or entry.key_id is None:
        if verdict.signed_by:
            return f"{where}: not signed, after signed entries: forged"
        if not allow_unsigned:
            return f"{where}: not signed: refused (an unsigned ledger verifies only with --allow-unsigned)"
    else:
        why = keys.verifies(entry.key_id, ENTRY_SIGNED + entry.hash.encode(), entry.signature)
        if why is not None:
            return f"{where}: {why}: forged"
        until = keys[entry.key_id].until_sequence
        if until is not None and entry.sequence > until:
            return f"{where}: signed with key {entry.key_id}, retired after sequence {until}: forged"
    last = verdict.trusted[-1] if verdict.trusted else None
    expected = last.sequence + 1 if last is not None else 0
    after = f"sequence {last.sequence}" if last is not None else "the start"
    if entry.sequence > expected:
        return f"{where}: expected sequence {expected} after {after}: entries missing before it"
    if entry.sequence < expected:
        return f"{where}: expected sequence {expected} after {after}: a repeat of an earlier entry"
    if entry.prev_hash != (last.hash if last is not None else GENESIS):
        return f"{where}: its prev_hash is not the hash of {after}: not its successor"
    return None


def _against_checkpoints(verdict: Verdict, checkpoints: Sequence[Read], keys: TrustedKeys) -> None:
    by_sequence = {e.sequence: e for e in verdict.trusted}
    head = verdict.trusted[-1] if verdict.trusted else None
    for read in checkpoints:
        where = f"checkpoint offset {read.offset}"
        made = read.item
        if made is None:
            verdict.problems.append(f"{where}: corrupt bytes, not a checkpoint: {read.error}")
            continue
        why = keys.verifies(
            made.key_id, checkpoint_message(made.sequence, made.hash, made.at), made.signature
        )
        if why is not None:
            verdict.problems.append(f"{where}: {why}: forged")
            continue
        verdict.checkpoint = made
        held = by_sequence.get(made.sequence)
        if held is None:
            ends = f"ends at sequence {head.sequence}" if head is not None else "has no trusted entry"
            verdict.problems.append(
                f"{where}: vouches for sequence {made.sequence} (hash {made.hash[:16]}), but the trusted "
                f"ledger {ends}: entries cut or refused after it"
            )
        elif held.hash != made.hash:
            verdict.problems.append(
                f"{where}: vouches for sequence {made.sequence} with hash {made.hash[:16]}, but the ledger's "
                f"has hash {held.hash[:16]}: rewritten at or before sequence {made.sequence}"
            )
