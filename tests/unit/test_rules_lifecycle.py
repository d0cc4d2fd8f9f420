"""The alert lifecycle of one (rule, place), pure: firing, updates, hysteresis, persistence, sources."""

from __future__ import annotations

import datetime as dt

import pytest

from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import RulesError, parse_rules
from tocsin.pipelines.rules.lifecycle import Track, absent, memberships, next_absent_check, observe, restore

H = 3_600_000
T0 = 1_700_000_000_000 // H * H


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def rule_of(catalogue, **fields):
    base = {
        "id": "r",
        "description": "test rule",
        "kind": "threshold",
        "indicator": "rf1.armed_conflict",
        "window": "2h/1h",
        "levels": {"watch": 5, "warning": 10, "critical": 20},
    }
    ruleset = parse_rules({"version": 1, "rules": [base | fields]}, catalogue)
    return ruleset.rules[0], ruleset.risk_factors


def signal(
    hour,
    count,
    *,
    indicator="rf1.armed_conflict",
    sources=3,
    pane="ON_TIME",
    index=0,
    evidence=("a",),
    origins=None,
    reported=None,
):
    return {
        "indicator_id": indicator,
        "country": "SDN",
        "region": None,
        "window_start": T0 + (hour - 2) * H,
        "window_end": T0 + hour * H,
        "count": count,
        "weighted_count": float(count),
        "fatalities": 0,
        "distinct_sources": sources,
        "distinct_origins": sources if origins is None else origins,
        "reported_sources": sources if reported is None else reported,
        "pane": pane,
        "pane_index": index,
        "evidence": [
            {
                "observation_id": e,
                "source_id": f"gdelt:{e}",
                "title": f"t {e}",
                "url": None,
                "origin": "x.org",
                "event_time": T0,
            }
            for e in evidence
        ],
    }


def run(rule, rfs, signals, track=None):
    """Feed signals (or ("absent", hour)) in order; return [(status, severity, hour)] emitted."""
    track = track or Track(rule.id, "SDN")
    out = []
    for item in signals:
        if isinstance(item, tuple):
            events = absent(track, rule, rfs, T0 + item[1] * H)
        else:
            events = observe(track, rule, rfs, item)
        out += [(a["status"], a["severity"], (a["window_end"] - T0) // H) for a in events]
    return out


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([1, 4], []),
        ([1, 5], [("FIRING", "WATCH", 2)]),
        ([6, 12, 25], [("FIRING", "WATCH", 1), ("UPDATED", "WARNING", 2), ("UPDATED", "CRITICAL", 3)]),
        ([25, 12], [("FIRING", "CRITICAL", 1), ("UPDATED", "WARNING", 2)]),
        ([6, 6, 6], [("FIRING", "WATCH", 1)]),  # unchanged: not repeated on every window
        ([6, 2], [("FIRING", "WATCH", 1), ("RESOLVED", "WATCH", 2)]),
    ],
)
def test_threshold(catalogue, counts, expected):
    rule, rfs = rule_of(catalogue)
    assert run(rule, rfs, [signal(h + 1, c) for h, c in enumerate(counts)]) == expected


def test_hysteresis_no_flapping_on_a_value_oscillating_around_the_threshold(catalogue):
    rule, rfs = rule_of(catalogue, resolve_below=3)
    counts = [5, 4, 6, 4, 5, 4, 6, 2, 4, 5]
    assert run(rule, rfs, [signal(h + 1, c) for h, c in enumerate(counts)]) == [
        ("FIRING", "WATCH", 1),
        ("RESOLVED", "WATCH", 8),
        ("FIRING", "WATCH", 10),
    ]
    without, rfs = rule_of(catalogue)  # resolve at the firing level: it flaps
    assert len(run(without, rfs, [signal(h + 1, c) for h, c in enumerate(counts)])) == 9


def test_persistence_needs_consecutive_windows(catalogue):
    rule, rfs = rule_of(catalogue, **{"for": 3})
    assert run(rule, rfs, [signal(h + 1, c) for h, c in enumerate([6, 6, 1, 6, 6, 6])]) == [
        ("FIRING", "WATCH", 6)
    ]
    # a missing window (no signal) breaks the run: it counted zero
    assert run(rule, rfs, [signal(h, 6) for h in (1, 2, 4, 5)]) == []


def test_minimum_distinct_sources(catalogue):
    rule, rfs = rule_of(catalogue, min_sources=2)
    assert run(rule, rfs, [signal(1, 30, sources=1)]) == []
    assert run(rule, rfs, [signal(1, 30, sources=1), signal(2, 30, sources=2)]) == [("FIRING", "CRITICAL", 2)]


@pytest.mark.parametrize(
    "corroboration, fires",
    [("any", True), ("reported", True), ("publishers", False)],
)
def test_a_rule_says_which_corroboration_it_needs(catalogue, corroboration, fires):
    # One curated dataset (one publisher) whose event reports four sources of its own.
    rule, rfs = rule_of(catalogue, min_sources=2, corroboration=corroboration)
    out = run(rule, rfs, [signal(1, 30, sources=4, origins=1, reported=4)])
    assert out == ([("FIRING", "CRITICAL", 1)] if fires else [])


def test_an_unknown_corroboration_is_refused(catalogue):
    with pytest.raises(RulesError) as refused:
        rule_of(catalogue, corroboration="hosts")
    assert refused.value.errors == [
        "rules.0.corroboration: Input should be 'any', 'publishers' or 'reported'"
    ]


@pytest.mark.parametrize(
    "history, current, expected",
    [
        ([4, 4], 8, "WATCH"),  # ratio 2
        ([4, 4], 12, "WARNING"),
        ([0, 0], 3, None),  # below min_value
        ([0, 0], 5, "CRITICAL"),  # previous empty: ratio against 1
        ([10, 10], 15, None),
    ],
)
def test_rate_of_change_against_the_previous_window(catalogue, history, current, expected):
    # 2h windows every hour: the previous non-overlapping window ends two hours before
    rule, rfs = rule_of(
        catalogue,
        kind="rate_of_change",
        previous=1,
        min_value=5,
        levels={"watch": 2, "warning": 3, "critical": 5},
    )
    # one event at hour 1 starts the history: windows before a place's first signal are unknown, not zero
    signals = [signal(1, 1), *([signal(2, history[0])] if history[0] else []), signal(4, current)]
    emitted = run(rule, rfs, signals)
    assert [s for _, s, h in emitted if h == 4] == ([expected] if expected else [])


def test_anomaly_against_the_places_own_baseline(catalogue):
    rule, rfs = rule_of(
        catalogue,
        kind="anomaly",
        window="1h",
        baseline=6,
        min_history=4,
        min_value=3,
        levels={"watch": 3, "warning": 5, "critical": 8},
    )
    quiet = [signal(h, 2) for h in range(1, 4)]
    assert run(rule, rfs, [*quiet, signal(4, 40)]) == []  # three windows of history: not ready
    history = [signal(h, c) for h, c in zip(range(1, 7), [20, 22, 18, 21, 19, 20], strict=True)]
    # a country with heavy coverage: 26 is well inside its usual 20 +- 1.4
    assert run(rule, rfs, [*history, signal(7, 22)]) == []
    assert run(rule, rfs, [*history, signal(7, 26)]) == [("FIRING", "WATCH", 7)]  # z = 4.6
    # a quiet country: 0 events every window, std floored at 1: 6 events is 6 sigma
    assert run(rule, rfs, [*[signal(h, 0) for h in range(1, 7)], signal(7, 6)]) == [("FIRING", "WARNING", 7)]


def test_anomaly_ratio_method(catalogue):
    rule, rfs = rule_of(
        catalogue,
        kind="anomaly",
        window="1h",
        baseline=4,
        min_history=2,
        method="ratio",
        levels={"watch": 2, "critical": 4},
    )
    assert run(rule, rfs, [signal(1, 5), signal(2, 5), signal(3, 11)]) == [("FIRING", "WATCH", 3)]
    assert run(rule, rfs, [signal(1, 5), signal(2, 5), signal(3, 20)]) == [("FIRING", "CRITICAL", 3)]


def test_risk_score_across_indicators(catalogue):
    rule, rfs = rule_of_score(catalogue)
    track = Track(rule.id, "SDN")
    assert observe(track, rule, rfs, signal(1, 10)) and track.alert["severity"] == "WATCH"  # 1/4 = 25
    [update] = observe(track, rule, rfs, signal(1, 4, indicator="rf8.incitement"))
    assert (update["status"], update["severity"]) == ("UPDATED", "CRITICAL")  # (1 + 3) / 4 = 100
    assert update["values"][0] == {
        "name": "risk score (0-100)",
        "value": 100.0,
        "threshold": 75.0,
        "comparator": ">=",
    }
    assert sorted(update["risk_factors"]) == [1, 7, 8]
    assert update["indicator_ids"] == ["rf1.armed_conflict", "rf8.incitement"]


def rule_of_score(catalogue):
    ruleset = parse_rules(
        {
            "version": 1,
            "rules": [
                {
                    "id": "score",
                    "description": "d",
                    "kind": "risk_score",
                    "window": "2h/1h",
                    "levels": {"watch": 25, "warning": 50, "critical": 75},
                    "indicators": {
                        "rf1.armed_conflict": {"weight": 1, "saturation": 10},
                        "rf8.incitement": {"weight": 3, "saturation": 4},
                    },
                }
            ],
        },
        catalogue,
    )
    return ruleset.rules[0], ruleset.risk_factors


def test_early_panes_raise_but_never_lower_or_resolve(catalogue):
    rule, rfs = rule_of(catalogue)
    assert run(
        rule,
        rfs,
        [
            signal(1, 6),
            signal(3, 1, pane="EARLY"),  # the next windows' first hits: partial, must not resolve
            signal(2, 12, pane="EARLY"),  # enough already to raise the severity early
            signal(2, 13, pane="ON_TIME", index=1),  # the same severity on time: no repeat... evidence same
        ],
    ) == [("FIRING", "WATCH", 1), ("UPDATED", "WARNING", 2)]


def test_an_earlier_window_decided_after_a_later_early_pane_does_not_lower_the_alert(catalogue):
    rule, rfs = rule_of(catalogue)
    assert run(
        rule,
        rfs,
        [
            signal(2, 12, pane="EARLY"),  # raised early on window 2
            signal(1, 6),  # window 1 closes after that: watch level, but window 2 already says warning
            signal(2, 12, index=1),  # window 2 on time: unchanged
            signal(3, 6),
        ],
    ) == [("FIRING", "WARNING", 2), ("UPDATED", "WATCH", 3)]


def test_a_late_pane_revising_the_window_updates_the_alert(catalogue):
    rule, rfs = rule_of(catalogue)
    assert run(rule, rfs, [signal(1, 3), signal(1, 7, pane="LATE", index=1)]) == [("FIRING", "WATCH", 1)]
    assert run(rule, rfs, [signal(1, 7), signal(2, 8), signal(2, 2, pane="LATE", index=1)]) == [
        ("FIRING", "WATCH", 1),
        ("RESOLVED", "WATCH", 2),
    ]


def test_an_older_pane_delivered_after_a_newer_one_is_ignored(catalogue):
    rule, rfs = rule_of(catalogue)
    assert run(rule, rfs, [signal(1, 7, pane="LATE", index=2), signal(1, 2, pane="ON_TIME", index=1)]) == [
        ("FIRING", "WATCH", 1)
    ]


def test_new_evidence_updates_a_firing_alert(catalogue):
    rule, rfs = rule_of(catalogue)
    assert run(
        rule,
        rfs,
        [signal(1, 6, evidence=("a",)), signal(2, 6, evidence=("a",)), signal(3, 6, evidence=("a", "b"))],
    ) == [("FIRING", "WATCH", 1), ("UPDATED", "WATCH", 3)]


def test_absent_windows_count_zero_and_resolve(catalogue):
    rule, rfs = rule_of(catalogue)
    track = Track(rule.id, "SDN")
    assert next_absent_check(track, rule) is None
    assert run(rule, rfs, [signal(1, 6)], track) == [("FIRING", "WATCH", 1)]
    assert next_absent_check(track, rule) == T0 + 2 * H
    assert run(rule, rfs, [("absent", 2)], track) == [("RESOLVED", "WATCH", 2)]
    assert next_absent_check(track, rule) is None
    assert run(rule, rfs, [("absent", 2), signal(1, 9, pane="LATE", index=1)], track) == []  # decided


def test_ids_are_deterministic_and_a_new_episode_gets_a_new_id(catalogue):
    rule, rfs = rule_of(catalogue)
    signals = [signal(1, 6), signal(2, 1), signal(3, 6)]
    first, second = (Track(rule.id, "SDN") for _ in range(2))
    a = [observe(first, rule, rfs, s) for s in signals]
    b = [observe(second, rule, rfs, s) for s in signals]
    assert a == b
    ids = [events[0]["id"] for events in a]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0] == f"r:SDN:{dt.datetime.fromtimestamp((T0 + H) / 1000, dt.UTC):%Y-%m-%dT%H:%MZ}"
    assert [events[0]["sequence"] for events in a] == [1, 2, 1]


def test_a_restored_track_replays_its_history_without_emitting_again(catalogue):
    rule, rfs = rule_of(catalogue)
    signals = [signal(1, 6), signal(2, 12), signal(3, 12), signal(4, 13, evidence=("a", "b"))]
    live = Track(rule.id, "SDN")
    emitted = [a for s in signals[:3] for a in observe(live, rule, rfs, s)]
    restored = restore(rule.id, "SDN", emitted[-1])
    replayed = [a for s in signals for a in observe(restored, rule, rfs, s)]
    assert [(a["status"], a["sequence"]) for a in replayed] == [("UPDATED", 3)]


def test_alert_content_and_routing_labels(catalogue):
    rule, rfs = rule_of(catalogue, min_sources=2)
    track = Track(rule.id, "SDN")
    [alert] = observe(track, rule, rfs, signal(1, 12, sources=4, evidence=("a", "b")))
    assert alert["values"] == [
        {"name": "rf1.armed_conflict count", "value": 12.0, "threshold": 10.0, "comparator": ">="},
        {"name": "distinct sources", "value": 4.0, "threshold": 2.0, "comparator": ">="},
    ]
    assert [e["record_id"] for e in alert["evidence"]] == ["gdelt:a", "gdelt:b"]
    assert alert["labels"] == {
        "alertname": "r",
        "rule": "r",
        "severity": "warning",
        "country": "SDN",
        "indicator": "rf1.armed_conflict",
        "risk_factors": "rf1",
        "rf1": "true",
        "au": "true",
        "igad": "true",
        "las": "true",
    }
    assert alert["summary"].startswith(
        "r fired for SDN: rf1.armed_conflict count reached 10 (12) in the 2h window"
    )
    assert alert["rule_version"] == rule.version and len(rule.version) == 12


def test_memberships():
    assert memberships("NGA") == ("au", "ecowas")
    assert memberships("MLI") == ("au",)  # left ECOWAS in 2025
    assert memberships("TLS") == ("asean",)
    assert memberships("XXX") == ()


def test_risk_score_is_decided_once_per_window_from_all_its_indicators(catalogue):
    """Decided per signal, the score of hour 1 would fire at WATCH on one indicator and update to
    CRITICAL on the next; decided once per window it fires once, at CRITICAL."""
    from tocsin.pipelines.rules.config import RuleSet
    from tocsin.pipelines.rules.dryrun import dry_run
    from tocsin.pipelines.rules.lifecycle import observe_window

    rule, rfs = rule_of_score(catalogue)
    window = [signal(1, 10), signal(1, 4, indicator="rf8.incitement")]
    [alert] = observe_window(Track(rule.id, "SDN"), rule, rfs, window)
    assert (alert["status"], alert["severity"]) == ("FIRING", "CRITICAL")
    # The dry run (and so the back-test) groups a window's signals the same way, in either order.
    ruleset = RuleSet(version=1, rules=(rule,), risk_factors=rfs)
    for ordered in (window, window[::-1]):
        assert [(a["status"], a["severity"]) for a in dry_run(ruleset, ordered)] == [("FIRING", "CRITICAL")]


def test_a_share_rule_measures_a_percentage_of_all_reports_and_its_floor_on_the_count(catalogue):
    """Twice the reports of killings in a week of twice the coverage is the same share: no alert."""
    from tocsin.pipelines.rules.evaluate import evaluate

    rule, _ = rule_of(
        catalogue,
        kind="anomaly",
        indicator="rf2.killings_reported",
        share_of="volume.reports",
        baseline=3,
        min_history=2,
        method="zscore",
        min_value=3,
        levels={"watch": 3},
    )

    def week(hour, killings, reports):
        return {
            T0 + hour * H: {
                "rf2.killings_reported": {"count": killings},
                "volume.reports": {"count": reports},
            }
        }

    steady = week(-6, 2, 100) | week(-4, 4, 200) | week(-2, 6, 300) | week(0, 12, 600)  # 2 % each
    flat = evaluate(rule, steady, T0)  # "2h/1h": windows 2 h apart; 6x the coverage
    assert flat.current == 2.0 and flat.level is None
    shift = steady | week(2, 30, 300)  # 10 % of the coverage: killings are what is reported now
    risen = evaluate(rule, shift, T0 + 2 * H)
    assert (risen.current, risen.level) == (10.0, "watch")
    assert risen.values[0]["name"] == (
        "rf2.killings_reported count % of volume.reports z-score against 3-window baseline"
    )
    few = evaluate(rule, steady | week(2, 2, 10), T0 + 2 * H)  # 20 %, but 2 reports < 3
    assert (few.current, few.level) == (20.0, None)


def test_an_early_pane_that_comes_before_the_replayed_history_does_not_end_the_quiet(catalogue):
    # After a restart the Beam stage decides an early pane at once, while the complete panes it re-reads
    # wait for the watermark: an early pane of a later window comes first. It must not end the quiet
    # replay of the restored alert's history, or that history is decided again (a second UPDATED, or a
    # RESOLVED of a live warning, from windows decided before the restart).
    rule, rfs = rule_of(catalogue)
    signals = [signal(1, 12), signal(2, 21), signal(3, 3), signal(4, 12)]
    live = Track(rule.id, "SDN")
    emitted = [
        a for s in signals[:2] for a in observe(live, rule, rfs, s)
    ]  # FIRING warning, UPDATED critical
    restored = restore(rule.id, "SDN", emitted[-1])
    early = signal(5, 3, pane="EARLY")  # an early pane of a later window, below the critical level
    assert observe(restored, rule, rfs, early) == []
    replayed = [a for s in signals[:2] for a in observe(restored, rule, rfs, s)]
    assert replayed == []  # the history before the restart: decided already, nothing again
    assert run(rule, rfs, signals[2:], restored) == [("RESOLVED", "CRITICAL", 3), ("FIRING", "WARNING", 4)]
