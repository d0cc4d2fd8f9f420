"""`rules test` and back-tests read signals in decision order from sorted runs on disk, not from a list in
memory: the alerts are those of the in-memory dry run, for any run size."""

from __future__ import annotations

import json
import random

from tests.conftest import ROOT
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import load_rules, packaged_rules_path
from tocsin.pipelines.rules.dryrun import SortedSignals, dry_run, read_by_rules, read_signals, signal_lines
from tocsin.pipelines.rules.lifecycle import decision_order, groups_in_order, window_groups

SIGNALS = ROOT / "tests" / "fixtures" / "signals" / "ucdp_sample_7d_AGO_NGA_SDN.jsonl"
RULES = load_rules(packaged_rules_path(), load_catalogue())


def test_signals_merged_from_small_runs_come_in_decision_order_and_give_the_same_alerts(tmp_path):
    recorded = read_signals(SIGNALS)
    shuffled = recorded[:]
    random.Random(7).shuffle(shuffled)
    with SortedSignals(iter(shuffled), run=97, directory=tmp_path) as ordered:
        assert len(ordered.runs) == -(-len(recorded) // 97) > 3
        assert len(ordered) == len(recorded)
        keys = [decision_order(s) for s in ordered]
        assert keys == sorted(decision_order(s) for s in recorded)
        assert dry_run(RULES, ordered, ordered=True) == dry_run(RULES, recorded)
        again = dry_run(RULES, ordered, ordered=True)  # iterable again: a back-test replays per sweep
    assert again == dry_run(RULES, recorded)
    assert list(tmp_path.iterdir()) == []  # the runs are gone


def test_one_run_stays_in_memory_and_signals_no_rule_reads_are_dropped(tmp_path):
    recorded = read_signals(SIGNALS)
    stray = {**recorded[0], "indicator_id": "no.such.indicator", "id": "stray"}
    with SortedSignals(iter(recorded + [stray]), keep=read_by_rules(RULES), directory=tmp_path) as ordered:
        assert ordered.runs == []
        kept = [s["id"] for s in ordered]
        assert "stray" not in kept and len(ordered) == len(kept) < len(recorded)  # some no rule reads
        assert dry_run(RULES, ordered, ordered=True) == dry_run(RULES, recorded)


def test_groups_of_ordered_signals_are_the_groups_of_the_sorted_list():
    recorded = read_signals(SIGNALS)
    ordered = sorted(recorded, key=decision_order)
    assert list(groups_in_order(iter(ordered))) == window_groups(recorded)


def test_signal_lines_read_every_file_in_turn(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text(json.dumps({"id": 1}) + "\n\n" + json.dumps({"id": 2}) + "\n")
    b.write_text(json.dumps({"id": 3}) + "\n")
    assert [s["id"] for s in signal_lines([a, b])] == [1, 2, 3]
