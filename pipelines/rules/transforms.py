"""Beam stage: indicator signals -> alert events, with the lifecycle of each (rule, place) in Beam state.

`Alerts(ruleset, restored)` composes two steps: KeyByRule sends each signal to every rule that reads it
(its indicator, window spec and kind of place), keyed "rule_id|place"; AlertLifecycle keeps a Track per key
in state and emits what `lifecycle.observe` / `lifecycle.absent` decide.

Event time of a signal (`signal_event_time`): its window end for complete panes (on time, late), its
window start for early ones. An early pane of a later window can then not push the watermark past the
end of a window whose on-time pane is still to come (it was emitted because data at or after its start
was seen, not its end).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.rules.lifecycle import (
    PANE_ORDER,
    absent,
    keyed_by_rule,
    next_absent_check,
    observe,
    restore,
    track_key,
)
from tocsin.telemetry.metrics import counter

ALERTS = counter("tocsin_alerts_total", "Alert events emitted", ["rule", "status", "severity"])
EVALUATIONS = counter("tocsin_rule_evaluations_total", "Signals evaluated by a rule", ["rule"])


class KeyByRule(beam.DoFn):
    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset

    def process(self, signal):
        yield from keyed_by_rule(self.ruleset, signal)


class AlertLifecycle(beam.DoFn):
    """Per (rule, place): decide complete panes in window order once the watermark passes their end.

    Signals of one place reach this key from several partitions, so not in window order; deciding them
    as they come would skip windows (a window decided after a later one only revises history). Complete
    (on-time, late) panes therefore wait in a bag until the input watermark passes their window end, and
    are then decided in window order; early panes are decided at once (they can only raise an alert).
    The same timer decides, as zero, the windows of a firing alert that got no signal at all.
    """

    TRACK = ReadModifyWriteStateSpec("track", PickleCoder())
    PENDING = BagStateSpec("pending", PickleCoder())
    ARMED = ReadModifyWriteStateSpec("armed", PickleCoder())
    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def __init__(self, ruleset: RuleSet, restored: dict[str, dict] | None = None):
        self.ruleset = ruleset
        self.restored = restored or {}

    def _track(self, key: str, state):
        track = state.read()
        if track is None:
            rule_id, place = key.split("|", 1)
            track = restore(rule_id, place, self.restored.get(key))
        return track

    def process(
        self,
        element,
        track_state=beam.DoFn.StateParam(TRACK),
        pending=beam.DoFn.StateParam(PENDING),
        armed=beam.DoFn.StateParam(ARMED),
        due=beam.DoFn.TimerParam(DUE),
    ):
        key, signal = element
        EVALUATIONS.labels(key.split("|", 1)[0]).inc()
        if signal.get("pane") == "EARLY":
            track = self._track(key, track_state)
            rule = self.ruleset.by_id(track.rule_id)
            events = observe(track, rule, self.ruleset.risk_factors, signal)
            track_state.write(track)
            check = _absent_due(track, rule)
            if check is not None:
                _arm(armed, due, check)
            yield from _counted(events)
            return
        pending.add(signal)
        _arm(armed, due, _ms(signal["window_end"]))

    @on_timer(DUE)
    def on_due(
        self,
        key=beam.DoFn.KeyParam,
        fired=beam.DoFn.TimestampParam,
        track_state=beam.DoFn.StateParam(TRACK),
        pending=beam.DoFn.StateParam(PENDING),
        armed=beam.DoFn.StateParam(ARMED),
        due=beam.DoFn.TimerParam(DUE),
    ):
        now = fired.micros // 1000
        armed.clear()
        track = self._track(key, track_state)
        rule = self.ruleset.by_id(track.rule_id)
        waiting = list(pending.read())
        ready = sorted((s for s in waiting if _ms(s["window_end"]) <= now), key=decision_order)
        later = [s for s in waiting if _ms(s["window_end"]) > now]
        events = []
        for signal in ready:
            events += _absent_before(track, rule, self.ruleset, _ms(signal["window_end"]))
            events += observe(track, rule, self.ruleset.risk_factors, signal)
        events += _absent_before(track, rule, self.ruleset, now - rule.period_ms + 1)
        pending.clear()
        for signal in later:
            pending.add(signal)
        track_state.write(track)
        for end in [_ms(s["window_end"]) for s in later] + [_absent_due(track, rule)]:
            if end is not None:
                _arm(armed, due, end)
        yield from _counted(events)


def signal_event_time(signal: dict) -> int:
    """Event time (ms) the alert stage gives a signal: see the module's docstring."""
    return _ms(signal["window_start"] if signal.get("pane") == "EARLY" else signal["window_end"])


def decision_order(signal: dict) -> tuple:
    return _ms(signal["window_end"]), PANE_ORDER.get(signal.get("pane"), 1), signal.get("pane_index", 0)


def _absent_before(track, rule, ruleset: RuleSet, end_ms: int) -> list[dict]:
    """Decide every window of a firing alert ending before end_ms with no complete pane: on what it got
    (nothing, so zero; or an early pane whose on-time pane never came)."""
    events = []
    check = next_absent_check(track, rule)
    while check is not None and check < end_ms:
        events += absent(track, rule, ruleset.risk_factors, check)
        check = next_absent_check(track, rule)
    return events


def _absent_due(track, rule) -> int | None:
    """When to decide the next window of a firing alert if no signal comes: a period past its end, a
    margin for on-time panes of that window still in flight in another partition."""
    check = next_absent_check(track, rule)
    return None if check is None else check + rule.period_ms


def _arm(armed, due, at_ms: int) -> None:
    current = armed.read()
    if current is None or at_ms < current:
        armed.write(at_ms)
        due.set(Timestamp(micros=at_ms * 1000))


def _counted(events):
    for alert in events:
        ALERTS.labels(alert["rule_id"], alert["status"], alert["severity"]).inc()
        yield alert


class Alerts(beam.PTransform):
    """signals -> alert events (dicts of the Alert schema)."""

    def __init__(self, ruleset: RuleSet, restored: dict[str, dict] | None = None):
        super().__init__()
        self.ruleset = ruleset
        self.restored = restored

    def expand(self, signals):
        return (
            signals
            | "KeyByRule" >> beam.ParDo(KeyByRule(self.ruleset))
            | "Lifecycle" >> beam.ParDo(AlertLifecycle(self.ruleset, self.restored))
        )


def latest_alerts(alerts) -> dict[str, dict]:
    """The last state of each (rule, place) among decoded alerts (highest window, then sequence)."""
    latest: dict[str, dict] = {}
    for alert in alerts:
        place = alert["country"] + (f"/{alert['region']}" if alert.get("region") else "")
        key = track_key(alert["rule_id"], place)
        rank = (_ms(alert["last_updated"]), alert["sequence"])
        held = latest.get(key)
        if held is None or rank >= (_ms(held["last_updated"]), held["sequence"]):
            latest[key] = alert
    return latest


def _ms(value) -> int:
    return int(value.timestamp() * 1000) if hasattr(value, "timestamp") else int(value)
