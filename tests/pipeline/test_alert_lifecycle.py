"""Alerts (rules over signals, lifecycle in Beam state) on the local streaming runner, driven by TestStream.

Signals carry the event time the job's decoder gives them (window end; window start for early panes).
"""

from __future__ import annotations

import apache_beam as beam
import pytest
from apache_beam.testing.test_stream import TestStream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tocsin.pipelines.indicators import load_catalogue
from tocsin.pipelines.rules.config import parse_rules
from tocsin.pipelines.rules.lifecycle import Track, observe, track_key
from tocsin.pipelines.rules.transforms import Alerts, signal_event_time
from tocsin.runners import streaming_options

pytestmark = pytest.mark.runner

H = 3600
T0 = 1_605_225_600  # 2020-11-13T00:00:00Z
RULESET = parse_rules(
    {
        "version": 1,
        "rules": [
            {
                "id": "fights",
                "description": "test",
                "kind": "threshold",
                "indicator": "rf1.armed_conflict",
                "window": "2h/1h",
                "levels": {"watch": 5, "warning": 10},
                "resolve_below": 3,
            }
        ],
    },
    load_catalogue(),
)


def signal(hour: int, count: int, pane: str = "ON_TIME", index: int = 0, evidence=("e1",)) -> dict:
    return {
        "id": f"rf1.armed_conflict:SDN:{hour}",
        "indicator_id": "rf1.armed_conflict",
        "risk_factors": [1],
        "country": "SDN",
        "region": None,
        "window_start": (T0 + (hour - 2) * H) * 1000,
        "window_end": (T0 + hour * H) * 1000,
        "count": count,
        "weighted_count": float(count),
        "fatalities": 0,
        "distinct_sources": 2,
        "pane": pane,
        "pane_index": index,
        "evidence": [
            {
                "observation_id": e,
                "source_id": f"gdelt2:{e}",
                "title": e,
                "url": None,
                "origin": "example.org",
                "event_time": T0 * 1000,
            }
            for e in evidence
        ],
    }


def stamped(s: dict) -> TimestampedValue:
    return TimestampedValue(s, signal_event_time(s) / 1000)


def run(stream: TestStream, expected: list, restored=None, floor=None) -> None:
    """Run Alerts over the stream; check (status, severity, window end hour, sequence) of what it emits."""
    with beam.Pipeline(options=streaming_options([])) as p:
        alerts = p | stream | "Alerts" >> Alerts(RULESET, restored, floor)
        shown = alerts | beam.Map(
            lambda a: (a["status"], a["severity"], (a["window_end"] // 1000 - T0) // H, a["sequence"])
        )
        assert_that(shown, equal_to(expected))


def test_fire_update_resolve():
    stream = TestStream()
    for hour, count in ((1, 6), (2, 12), (3, 4), (4, 2)):  # 4 is inside the hysteresis band: no resolve
        stream = stream.add_elements([stamped(signal(hour, count))]).advance_watermark_to(T0 + (hour - 1) * H)
    expected = [
        ("FIRING", "WATCH", 1, 1),
        ("UPDATED", "WARNING", 2, 2),
        ("UPDATED", "WATCH", 3, 3),
        ("RESOLVED", "WATCH", 4, 4),
    ]
    run(stream.advance_watermark_to_infinity(), expected)


def test_a_replay_of_the_same_signals_emits_no_duplicate():
    signals = [signal(1, 6), signal(2, 12), signal(3, 2)]
    stream = (
        TestStream()
        .add_elements([stamped(s) for s in signals])
        .advance_watermark_to(T0 + 2 * H)
        .add_elements([stamped(s) for s in signals])  # the same panes delivered again
        .advance_watermark_to_infinity()
    )
    run(stream, [("FIRING", "WATCH", 1, 1), ("UPDATED", "WARNING", 2, 2), ("RESOLVED", "WARNING", 3, 3)])


def test_after_a_restart_the_restored_alerts_are_not_emitted_again():
    signals = [signal(1, 6), signal(2, 12), signal(3, 12)]
    track = Track("fights", "SDN")
    emitted = [a for s in signals[:2] for a in observe(track, RULESET.rules[0], RULESET.risk_factors, s)]
    assert [a["status"] for a in emitted] == ["FIRING", "UPDATED"]
    restored = {track_key("fights", "SDN"): emitted[-1]}  # what the job reads from the alert topic
    stream = (
        TestStream()
        .add_elements([stamped(s) for s in signals])  # re-read from the committed offsets
        .advance_watermark_to(T0 + 2 * H)
        .add_elements([stamped(signal(4, 2))])  # then something new
    )
    # Replaying window 1 (count 6) against the restored WARNING alert would downgrade it to WATCH if the
    # replay were not recognised; window 3 is unchanged; window 4 resolves it, continuing its sequence.
    run(stream.advance_watermark_to(T0 + 3 * H), [("RESOLVED", "WARNING", 4, 3)], restored)


def test_a_restored_firing_alert_resolves_even_if_its_place_sends_no_signal_after_the_restart():
    track = Track("fights", "SDN")
    emitted = [
        a
        for s in (signal(1, 6), signal(2, 12))
        for a in observe(track, RULESET.rules[0], RULESET.risk_factors, s)
    ]
    restored = {track_key("fights", "SDN"): emitted[-1]}  # WARNING, window 2
    quiet = {**signal(3, 1), "country": "ETH", "id": "rf1.armed_conflict:ETH:3"}  # another place only
    stream = TestStream().add_elements([stamped(quiet)]).advance_watermark_to(T0 + 6 * H)
    run(stream, [("RESOLVED", "WARNING", 3, 3)], restored)


def test_a_late_pane_revising_a_signal_updates_the_alert():
    stream = (
        TestStream()
        .add_elements([stamped(signal(1, 3))])
        .advance_watermark_to(T0 + 2 * H)
        .add_elements([stamped(signal(1, 7, pane="LATE", index=1))])  # late data revised window 1
        .advance_watermark_to(T0 + 2 * H + 1800)
        .add_elements([stamped(signal(1, 11, pane="LATE", index=2, evidence=("e1", "e2")))])
    )
    # The stream then ends (the watermark goes to infinity): window 2 got nothing, so the alert resolves.
    expected = [("FIRING", "WATCH", 1, 1), ("UPDATED", "WARNING", 1, 2), ("RESOLVED", "WARNING", 2, 3)]
    run(stream, expected)


def test_a_firing_alert_whose_signals_stop_resolves_once_the_watermark_passes():
    stream = (
        TestStream()
        .add_elements([stamped(signal(1, 6))])
        .advance_watermark_to(T0 + 5 * H)  # windows ending at 2h, 3h... got nothing: counted zero
    )
    run(stream, [("FIRING", "WATCH", 1, 1), ("RESOLVED", "WATCH", 2, 2)])


def test_windows_arriving_out_of_order_are_decided_in_window_order():
    # One place's signals come from several partitions: here window 3 is read before windows 1 and 2.
    stream = (
        TestStream()
        .add_elements([stamped(signal(3, 2)), stamped(signal(1, 6)), stamped(signal(2, 12))])
        .advance_watermark_to(T0 + 3 * H)
    )
    run(stream, [("FIRING", "WATCH", 1, 1), ("UPDATED", "WARNING", 2, 2), ("RESOLVED", "WARNING", 3, 3)])


def test_an_early_pane_raises_the_alert_before_its_window_closes():
    # Stamped with its window start, the early pane is decided at once, long before the window's end.
    stream = TestStream().add_elements([stamped(signal(1, 11, pane="EARLY"))])
    # The stream then ends: window 1 keeps its early value (no change), window 2 got nothing and resolves.
    run(stream, [("FIRING", "WARNING", 1, 1), ("RESOLVED", "WARNING", 2, 2)])


def test_after_a_restart_an_early_pane_first_and_windows_decided_unchanged_change_nothing():
    # Before the restart: FIRING at 1, UPDATED (warning) at 2, then windows 3 to 5 unchanged (same
    # evidence, so no event), all committed (floor: window 5). The restarted job re-reads from window 4
    # (the rules' history before the floor) and meets an early pane of window 7 before any complete
    # pane, as the Beam stage decides early panes at once. An uninterrupted run emits nothing more until
    # window 7 resolves the alert; so must the restarted one: no RESOLVED of a live warning from windows
    # 3 to 5 seen empty, no UPDATED again from the early pane ending the replay of its history.
    track = Track("fights", "SDN")
    emitted = [
        a
        for s in (signal(1, 6), signal(2, 12), signal(3, 12), signal(4, 12), signal(5, 12))
        for a in observe(track, RULESET.rules[0], RULESET.risk_factors, s)
    ]
    assert [a["status"] for a in emitted] == ["FIRING", "UPDATED"]
    restored = {track_key("fights", "SDN"): emitted[-1]}  # WARNING, window 2
    floor = (T0 + 5 * H) * 1000
    stream = (
        TestStream()
        .add_elements([stamped(signal(7, 11, pane="EARLY"))])
        .add_elements([stamped(s) for s in (signal(4, 12), signal(5, 12), signal(6, 12))])
        .advance_watermark_to(T0 + 7 * H)
        .add_elements([stamped(signal(7, 2, index=1))])
        .advance_watermark_to(T0 + 9 * H)
    )
    run(stream, [("RESOLVED", "WARNING", 7, 3)], restored, floor)
