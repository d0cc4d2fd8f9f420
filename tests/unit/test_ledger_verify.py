"""The signed ledger's verification (router/ledger_verify.check) on hand-built chains: the five forgeries
of issue #19 each found at its offset, corrupt bytes located, unsigned and wrongly signed entries refused,
and what the router rebuilds from (the trusted chain) free of every forged entry."""

from __future__ import annotations

import dataclasses

import pytest

from tocsin.router.ledger import Read, chain, checkpoint, parse_record
from tocsin.router.ledger_keys import TrustedKey, TrustedKeys, generate, trusted_line
from tocsin.router.ledger_verify import check
from tocsin.router.state import RouterState
from tocsin.serde.avro import SerdeError, decode_plain, default_registry, encode

T0 = 1_700_000_000_000
ROUTER = generate()
OTHER = generate()
KEYS = TrustedKeys.of(TrustedKey(ROUTER.id, ROUTER.public))


def entries(n: int, key=ROUTER, start=None) -> list:
    out, last = [], start
    for i in range(n):
        last = chain(last, T0 + i * 1000, "silence.expired", f"s{i}", "router", {"id": f"s{i}"}, key)
        out.append(last)
    return out


def reads(items) -> list[Read]:
    return [Read(offset, item) for offset, item in enumerate(items)]


def cp(entry, key=ROUTER):
    return checkpoint(entry, T0 + 99_000, key)


def test_a_signed_ledger_with_its_checkpoint_verifies():
    ledger = entries(5)
    verdict = check(reads(ledger), KEYS, reads([cp(ledger[2]), cp(ledger[4])]))
    assert verdict.problems == []
    assert verdict.trusted == ledger and verdict.checkpoint.sequence == 4
    assert verdict.signed_by == {ROUTER.id} and verdict.unsigned == 0


def test_1_an_appended_correctly_chained_entry_without_a_signature():
    ledger = entries(4)
    ledger.append(chain(ledger[-1], T0 + 9000, "silence.expired", "s9", "router", {"id": "s9"}))
    verdict = check(reads(ledger), KEYS, reads([cp(ledger[3])]))
    assert verdict.problems == ["offset 4 (sequence 4): not signed, after signed entries: forged"]
    assert verdict.trusted == ledger[:4]


def test_1_an_appended_entry_with_a_signature_copied_from_another_entry():
    ledger = entries(4)
    forged = chain(ledger[-1], T0 + 9000, "silence.expired", "s9", "router", {"id": "s9"})
    ledger.append(dataclasses.replace(forged, key_id=ROUTER.id, signature=ledger[0].signature))
    assert check(reads(ledger), KEYS).problems == [
        f"offset 4 (sequence 4): its signature does not verify with key {ROUTER.id}: forged"
    ]


def test_2_a_rewrite_from_a_point_is_found_where_it_starts():
    ledger = entries(6)
    rewritten = ledger[:3] + entries(3, key=None, start=ledger[2])  # the topic re-created from entry 3
    verdict = check(reads(rewritten), KEYS, reads([cp(ledger[5])]))
    assert verdict.problems == [
        "offset 3 (sequence 3): not signed, after signed entries: forged",
        "offset 4 (sequence 4): not signed, after signed entries: forged",
        "offset 5 (sequence 5): not signed, after signed entries: forged",
        f"checkpoint offset 0: vouches for sequence 5 (hash {ledger[5].hash[:16]}), but the trusted "
        "ledger ends at sequence 2: entries cut or refused after it",
    ]
    assert verdict.trusted == ledger[:3]


def test_2_an_edited_entry_is_found_and_what_follows_it_no_longer_follows():
    ledger = entries(4)
    ledger[1] = dataclasses.replace(ledger[1], actor="someone-else")
    assert check(reads(ledger), KEYS).problems == [
        "offset 1 (sequence 1): its content does not match its hash: edited",
        "offset 2 (sequence 2): expected sequence 1 after sequence 0: entries missing before it",
        "offset 3 (sequence 3): expected sequence 1 after sequence 0: entries missing before it",
    ]


def test_3_a_correctly_chained_forgery_signed_with_another_key():
    ledger = entries(3)
    ledger.append(chain(ledger[-1], T0 + 9000, "silence.expired", "s9", "router", {"id": "s9"}, OTHER))
    verdict = check(reads(ledger), KEYS)
    assert verdict.problems == [
        f"offset 3 (sequence 3): signed with key {OTHER.id}, which is not a trusted key: forged"
    ]


def test_3_a_forgery_signed_with_another_key_under_the_trusted_keys_id():
    ledger = entries(3)
    forged = chain(ledger[-1], T0 + 9000, "silence.expired", "s9", "router", {"id": "s9"}, OTHER)
    ledger.append(dataclasses.replace(forged, key_id=ROUTER.id))
    assert check(reads(ledger), KEYS).problems == [
        f"offset 3 (sequence 3): its signature does not verify with key {ROUTER.id}: forged"
    ]


def test_4_a_cut_tail_is_found_against_the_last_checkpoint():
    ledger = entries(6)
    verdict = check(reads(ledger[:4]), KEYS, reads([cp(ledger[1]), cp(ledger[5])]))
    assert verdict.problems == [
        f"checkpoint offset 1: vouches for sequence 5 (hash {ledger[5].hash[:16]}), but the trusted "
        "ledger ends at sequence 3: entries cut or refused after it"
    ]


def test_4_a_ledger_rewritten_and_resigned_before_a_checkpoint_no_longer_matches_it():
    # What only the key's holder could do (or a thief of it): the checkpoint still tells.
    ledger = entries(4)
    other = entries(2, start=ledger[1])
    verdict = check(reads(ledger[:2] + other), KEYS, reads([cp(ledger[3])]))
    assert verdict.problems == [
        f"checkpoint offset 0: vouches for sequence 3 with hash {ledger[3].hash[:16]}, but the ledger's "
        f"has hash {other[1].hash[:16]}: rewritten at or before sequence 3"
    ]


def test_forged_and_corrupt_checkpoints_are_refused():
    ledger = entries(2)
    forged = cp(ledger[1], OTHER)
    edited = dataclasses.replace(cp(ledger[1]), sequence=0)
    verdict = check(reads(ledger), KEYS, [Read(0, forged), Read(1, edited), Read(2, None, "bad header")])
    assert verdict.problems == [
        f"checkpoint offset 0: signed with key {OTHER.id}, which is not a trusted key: forged",
        f"checkpoint offset 1: its signature does not verify with key {ROUTER.id}: forged",
        "checkpoint offset 2: corrupt bytes, not a checkpoint: bad header",
    ]
    assert verdict.checkpoint is None


def test_5_a_forged_acknowledgement_is_refused_and_not_obeyed():
    alert = {"id": "a1", "sequence": 1, "status": "FIRING"}
    ledger = [
        chain(None, T0, "alert.received", "a1", "router", {"alert": alert, "partition": 0, "offset": 0})
    ]
    ledger.append(chain(ledger[-1], T0 + 1, "alert.routed", "a1", "router", {"routes": []}, ROUTER))
    ledger[0] = chain(None, T0, "alert.received", "a1", "router", ledger[0].payload, ROUTER)
    ledger[1] = chain(ledger[0], T0 + 1, "alert.routed", "a1", "router", {"routes": []}, ROUTER)
    ack = {"kind": "ACKNOWLEDGED", "organisation": "un", "responder": "forger"}
    ledger.append(chain(ledger[-1], T0 + 2, "response", "a1", "un/forger", ack))
    ledger.append(chain(ledger[-1], T0 + 3, "response", "a1", "un/forger", ack, OTHER))
    verdict = check(reads(ledger), KEYS)
    assert verdict.problems == [
        "offset 2 (sequence 2): not signed, after signed entries: forged",
        f"offset 3 (sequence 3): signed with key {OTHER.id}, which is not a trusted key: forged",
    ]
    assert "a1" not in RouterState.rebuilt(verdict.trusted).acks
    assert "a1" in RouterState.rebuilt(ledger).acks  # what obeying the topic as it is did


def test_corrupt_bytes_are_located_and_the_rest_still_verifies():
    ledger = entries(3)
    schema = default_registry().get("LedgerEntry")
    values = [encode(schema, e.as_record()) for e in ledger]
    values.insert(2, values[1][:20] + b"\xff" * 7)
    values.insert(1, b"garbage")
    records = [parse_record(offset, value, "LedgerEntry") for offset, value in enumerate(values)]
    verdict = check(records, KEYS)
    assert verdict.problems == [
        f"offset 1: corrupt bytes, not a ledger entry: {serde_error(values[1])}",
        f"offset 3: corrupt bytes, not a ledger entry: {serde_error(values[3])}",
    ]
    assert verdict.trusted == ledger


def serde_error(value: bytes) -> str:
    """The serde layer's own words for bytes it cannot decode (its messages are its tests')."""
    with pytest.raises(SerdeError) as caught:
        decode_plain(value)
    return str(caught.value)


def test_a_record_of_another_schema_is_not_an_entry():
    value = encode(default_registry().get("LedgerCheckpoint"), cp(entries(1)[0]).as_record())
    assert parse_record(7, value, "LedgerEntry") == Read(
        7, None, "a LedgerCheckpoint record, not a LedgerEntry"
    )


def test_an_unsigned_ledger_is_refused_unless_allowed_and_then_only_as_a_prefix():
    unsigned = entries(2, key=None)
    assert check(reads(unsigned), KEYS).problems == [
        "offset 0 (sequence 0): not signed: refused (an unsigned ledger verifies only with --allow-unsigned)",
        "offset 1 (sequence 1): not signed: refused (an unsigned ledger verifies only with --allow-unsigned)",
    ]
    upgraded = unsigned + entries(2, start=unsigned[-1])
    upgraded += entries(1, key=None, start=upgraded[-1])
    verdict = check(reads(upgraded), KEYS, allow_unsigned=True)
    assert verdict.problems == ["offset 4 (sequence 4): not signed, after signed entries: forged"]
    assert verdict.unsigned == 2 and verdict.signed_by == {ROUTER.id}


def test_a_retired_key_is_trusted_up_to_its_last_sequence():
    ledger = entries(3)
    retired = TrustedKeys.of(TrustedKey(ROUTER.id, ROUTER.public, until_sequence=1))
    assert check(reads(ledger), retired).problems == [
        f"offset 2 (sequence 2): signed with key {ROUTER.id}, retired after sequence 1: forged"
    ]


def test_a_rotated_key_goes_on_from_the_old_keys_chain():
    ledger = entries(2)
    ledger += entries(2, key=OTHER, start=ledger[-1])
    both = TrustedKeys.of(TrustedKey(ROUTER.id, ROUTER.public, 1), TrustedKey(OTHER.id, OTHER.public))
    verdict = check(reads(ledger), both)
    assert verdict.problems == [] and verdict.signed_by == {ROUTER.id, OTHER.id}


def test_a_repeated_signed_entry_is_a_repeat():
    ledger = entries(3)
    assert check(reads([*ledger, ledger[1]]), KEYS).problems == [
        "offset 3 (sequence 1): expected sequence 3 after sequence 2: a repeat of an earlier entry"
    ]


@pytest.mark.parametrize("n", [0, 1])
def test_trusted_line_names_its_key(n):
    key = (ROUTER, OTHER)[n]
    line = trusted_line(key, "x")
    assert line["id"] == key.id and line["comment"] == "x" and len(line["public_key"]) == 44
