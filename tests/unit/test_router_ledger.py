"""The ledger's hash chain: intact verifies; an edited, deleted or reordered entry is found and located."""

from __future__ import annotations

import dataclasses

from tocsin.router.ledger import chain, story, verify


def ledger(n: int = 5):
    entries, last = [], None
    for i in range(n):
        last = chain(
            last,
            1_700_000_000_000 + i * 1000,
            "response",
            "alert-1",
            "igad/amina",
            {"kind": "ACKNOWLEDGED", "i": i},
        )
        entries.append(last)
    return entries


def test_an_intact_ledger_verifies():
    assert verify(ledger()) == []
    assert verify([]) == []


def test_an_edited_entry_is_found():
    entries = ledger()
    entries[2] = dataclasses.replace(entries[2], actor="someone-else")
    assert verify(entries) == ["entry 2 (sequence 2): its content does not match its hash: edited"]


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link():
    entries = ledger()
    forged = chain(entries[1], entries[2].at, "response", "alert-1", "igad/amina", {"kind": "DECLINED"})
    entries[2] = forged
    assert verify(entries) == ["entry 3 (sequence 3): prev_hash is not the hash of the entry before it"]


def test_a_deleted_entry_is_found():
    entries = ledger()
    del entries[1]
    assert verify(entries) == [
        "entry 1 (sequence 2): expected sequence 1: entries missing",
        "entry 1 (sequence 2): prev_hash is not the hash of the entry before it",
    ]


def test_reordered_entries_are_found():
    entries = ledger()
    entries[1], entries[2] = entries[2], entries[1]
    assert verify(entries) == [
        "entry 1 (sequence 2): expected sequence 1: entries missing",
        "entry 1 (sequence 2): prev_hash is not the hash of the entry before it",
        "entry 2 (sequence 1): expected sequence 3: entries reordered or repeated",
        "entry 2 (sequence 1): prev_hash is not the hash of the entry before it",
        "entry 3 (sequence 3): prev_hash is not the hash of the entry before it",
    ]


def test_story_lists_one_alerts_entries_with_times():
    entries = ledger(2)
    entries.append(
        chain(
            entries[-1], 1_700_000_009_000, "escalation", "alert-2", "router", {"level": 1, "receiver": "un"}
        )
    )
    lines = story(entries, "alert-1")
    assert len(lines) == 2
    assert lines[0].startswith("2023-11-14 22:13:20  #0     response")
    assert lines[0].endswith("ACKNOWLEDGED")
