"""A restart of the alert job changes no alert: killed at any window, resumed from its commit (the
signals it re-reads and the last alert states on the alert topic), it emits exactly the events an
uninterrupted run emits after that point: none lost, none twice, none different (issue: a restart
resolved a live warning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import load_rules, parse_rules
from tocsin.pipelines.rules.dryrun import dry_run, read_signals
from tocsin.pipelines.rules.job import history_window
from tocsin.pipelines.rules.lifecycle import signal_event_time
from tocsin.pipelines.rules.transforms import latest_alerts
from tocsin.timestamps import epoch_ms

SIGNALS = Path(__file__).parents[1] / "fixtures" / "signals" / "ucdp_sample_7d_AGO_NGA_SDN.jsonl"
DAY = 86_400_000


def _event(alert: dict) -> tuple:
    return (alert["id"], alert["sequence"], alert["status"], alert["severity"], epoch_ms(alert["window_end"]))


@pytest.fixture(scope="module")
def replay():
    ruleset = load_rules(None, load_catalogue())
    signals = read_signals(SIGNALS)
    return ruleset, signals, dry_run(ruleset, signals)


def restart_points(signals, every: int = 3):
    """Commit points R (window boundaries) spread over the replay, every `every`-th distinct window end."""
    ends = sorted({epoch_ms(s["window_end"]) for s in signals})
    return ends[1:-1:every]


def resumed(ruleset, signals, uninterrupted, floor: int, killed_after: int):
    """What a run killed once its output reached `killed_after` and restarted from the commit at `floor`
    emits in all: the events out before the kill, then those of the resumed run."""
    span_s, period_s = history_window(ruleset)
    before = [a for a in uninterrupted if epoch_ms(a["window_end"]) <= killed_after]
    # The commit keeps the rules' history re-readable: the source resumes at the first signal whose
    # event time is past floor + period - span (pipelines/io/commit.py).
    reread = [s for s in signals if signal_event_time(s) >= floor + period_s * 1000 - span_s * 1000]
    after = dry_run(ruleset, reread, restored=latest_alerts(before), floor=floor)
    return before + after


def test_the_fixture_has_alerts_that_stay_firing_across_windows(replay):
    ruleset, signals, uninterrupted = replay
    assert len({a["id"] for a in uninterrupted}) >= 5
    assert any(a["status"] == "RESOLVED" for a in uninterrupted)
    assert len(restart_points(signals)) >= 20


@pytest.mark.parametrize("lag_windows", [0, 1, 3], ids=["at-commit", "1-window-past", "3-windows-past"])
def test_a_restart_at_any_window_changes_no_alert(replay, lag_windows):
    ruleset, signals, uninterrupted = replay
    expected = [_event(a) for a in uninterrupted]
    for floor in restart_points(signals):
        got = [_event(a) for a in resumed(ruleset, signals, uninterrupted, floor, floor + lag_windows * DAY)]
        assert len(got) == len(set(got)), f"restart at {floor}: an alert event emitted twice"
        assert got == expected, f"restart at {floor}: {sorted(set(expected) ^ set(got))[:3]}"


def _steady_signals(days: int, quiet_from: int) -> list[dict]:
    """7-day windows, daily, of one place: 12 events a week with the same evidence until `quiet_from`,
    then one: the alert fires once, stays firing unchanged (no event) for weeks, then resolves."""
    t0 = 1_600_000_000_000 // DAY * DAY
    evidence = [{"observation_id": "o", "source_id": "ucdp-ged:1", "title": "t", "url": None,
                 "origin": "ucdp-ged", "event_time": t0}]  # fmt: skip
    return [
        {
            "id": f"rf1.armed_conflict:SDN:{d}",
            "indicator_id": "rf1.armed_conflict",
            "country": "SDN",
            "region": None,
            "window_start": t0 + (d - 7) * DAY,
            "window_end": t0 + d * DAY,
            "count": 12 if d < quiet_from else 1,
            "weighted_count": 12.0 if d < quiet_from else 1.0,
            "fatalities": 0,
            "distinct_sources": 3,
            "pane": "ON_TIME",
            "pane_index": 0,
            "evidence": evidence,
        }  # fmt: skip
        for d in range(1, days + 1)
    ]


def test_an_alert_firing_unchanged_for_longer_than_the_rules_history_survives_a_restart():
    # Its last event (the FIRING) is older than every signal the restarted job re-reads: without the
    # commit's floor, the windows between were decided as empty and the live warning resolved.
    rule = {"id": "steady", "description": "test", "kind": "threshold", "indicator": "rf1.armed_conflict",
            "window": "7d/1d", "levels": {"watch": 5}}  # fmt: skip
    ruleset = parse_rules({"version": 1, "rules": [rule]}, load_catalogue())
    signals = _steady_signals(90, quiet_from=80)
    uninterrupted = dry_run(ruleset, signals)
    assert [(a["status"], a["sequence"]) for a in uninterrupted] == [("FIRING", 1), ("RESOLVED", 2)]
    expected = [_event(a) for a in uninterrupted]
    for floor_day in (20, 40, 60, 78):
        floor = epoch_ms(signals[floor_day - 1]["window_end"])
        assert [_event(a) for a in resumed(ruleset, signals, uninterrupted, floor, floor)] == expected
