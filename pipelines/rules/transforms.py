"""Beam stage: indicator signals -> alert events, with the lifecycle of each (rule, place) in Beam state.

`Alerts(ruleset, restored, floor)` composes two steps: KeyByRule sends each signal to every rule that reads it
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
    absent_before,
    absent_due,
    keyed_by_rule,
    observe,
    observe_window,
    place_of,
    restore,
    signal_event_time,
    track_key,
    window_groups,
)
from tocsin.serde.avro import decode, default_registry
from tocsin.telemetry.beam_metrics import pipeline_counter
from tocsin.timestamps import epoch_ms

ALERTS = pipeline_counter("tocsin_alerts_total", "Alert events emitted", ["rule", "status", "severity"])
EVALUATIONS = pipeline_counter("tocsin_rule_evaluations_total", "Signals evaluated by a rule", ["rule"])


class SignalWithEventTime:
    """ReadFromKafka's decoder: an IndicatorSignal, at its event time (`signal_event_time`)."""

    def __call__(self, value: bytes):
        signal = decode(value, default_registry().get("IndicatorSignal"))
        return signal, signal_event_time(signal)


class KeyByRule(beam.DoFn):
    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset

    def process(self, signal):
        yield from keyed_by_rule(self.ruleset, signal)


class AlertLifecycle(beam.DoFn):
    """Per (rule, place): decide complete panes in window order once the watermark passes their end.

    Signals of one place reach this key from several partitions, so not in window order; deciding them
    as they come would skip windows (a window decided after a later one only revises history). Complete
    (on-time, late) panes therefore wait in a bag until the input watermark passes the latest of their
    window ends, and are then decided in window order, all at once (one timer per batch, not per window:
    a replay of years of signals is decided in one firing). Early panes are decided at once (they can only
    raise an alert). With nothing waiting, the timer decides the next window of a firing alert if no
    complete pane comes for it: as zero, or on its early panes.
    """

    TRACK = ReadModifyWriteStateSpec("track", PickleCoder())
    PENDING = BagStateSpec("pending", PickleCoder())
    PENDING_MAX = ReadModifyWriteStateSpec("pending_max", PickleCoder())
    DUE = TimerSpec("due", TimeDomain.WATERMARK)

    def __init__(self, ruleset: RuleSet, restored: dict[str, dict] | None = None, floor: int | None = None):
        self.ruleset = ruleset
        self.restored = restored or {}
        self.floor = floor

    def _track(self, key: str, state):
        track = state.read()
        if track is None:
            rule_id, place = key.split("|", 1)
            track = restore(rule_id, place, self.restored.get(key), self.floor)
        return track

    def process(
        self,
        element,
        track_state=beam.DoFn.StateParam(TRACK),
        pending=beam.DoFn.StateParam(PENDING),
        pending_max=beam.DoFn.StateParam(PENDING_MAX),
        due=beam.DoFn.TimerParam(DUE),
    ):
        key, signal = element
        if signal is None:  # a restored firing alert: decide its next windows even if no signal comes
            if track_state.read() is None and pending_max.read() is None:
                track = self._track(key, track_state)
                track_state.write(track)
                due_at = absent_due(track, self.ruleset.by_id(track.rule_id))
                if due_at is not None:
                    due.set(_at(due_at))
            return
        EVALUATIONS.labels(key.split("|", 1)[0]).inc()
        if signal.get("pane") == "EARLY":
            track = self._track(key, track_state)
            rule = self.ruleset.by_id(track.rule_id)
            events = observe(track, rule, self.ruleset.risk_factors, signal)
            track_state.write(track)
            if pending_max.read() is None and absent_due(track, rule) is not None:
                due.set(_at(absent_due(track, rule)))
            yield from _counted(events)
            return
        pending.add(signal)
        end = epoch_ms(signal["window_end"])
        latest = pending_max.read()
        if latest is None or end > latest:
            pending_max.write(end)
            due.set(_at(end))

    @on_timer(DUE)
    def on_due(
        self,
        key=beam.DoFn.KeyParam,
        fired=beam.DoFn.TimestampParam,
        track_state=beam.DoFn.StateParam(TRACK),
        pending=beam.DoFn.StateParam(PENDING),
        pending_max=beam.DoFn.StateParam(PENDING_MAX),
        due=beam.DoFn.TimerParam(DUE),
    ):
        now = fired.micros // 1000
        track = self._track(key, track_state)
        rule = self.ruleset.by_id(track.rule_id)
        waiting = list(pending.read())
        ready = [s for s in waiting if epoch_ms(s["window_end"]) <= now]
        later = [s for s in waiting if epoch_ms(s["window_end"]) > now]
        events = []
        for group in window_groups(ready):  # one decision per window, all its indicators' panes in
            events += absent_before(track, rule, self.ruleset.risk_factors, epoch_ms(group[0]["window_end"]))
            events += observe_window(track, rule, self.ruleset.risk_factors, group)
        events += absent_before(track, rule, self.ruleset.risk_factors, now - rule.period_ms + 1)
        pending.clear()
        for signal in later:
            pending.add(signal)
        track_state.write(track)
        if later:
            latest = max(epoch_ms(s["window_end"]) for s in later)
            pending_max.write(latest)
            due.set(_at(latest))
        else:
            pending_max.clear()
            if absent_due(track, rule) is not None:
                due.set(_at(absent_due(track, rule)))
        yield from _counted(events)


def _at(ms: int) -> Timestamp:
    return Timestamp(micros=ms * 1000)


def _counted(events):
    for alert in events:
        ALERTS.labels(alert["rule_id"], alert["status"], alert["severity"]).inc()
        yield alert


class Alerts(beam.PTransform):
    """signals -> alert events (dicts of the Alert schema)."""

    def __init__(self, ruleset: RuleSet, restored: dict[str, dict] | None = None, floor: int | None = None):
        super().__init__()
        self.ruleset = ruleset
        self.restored = restored
        self.floor = floor

    def expand(self, signals):
        keyed = signals | "KeyByRule" >> beam.ParDo(KeyByRule(self.ruleset))
        # A restored firing alert whose place sends no signal any more must still resolve: one wake-up
        # element per such key starts its timer (a signal that comes first does the same).
        rules = {r.id for r in self.ruleset.rules}
        firing = sorted(
            key
            for key, alert in (self.restored or {}).items()
            if alert["status"] != "RESOLVED" and key.split("|", 1)[0] in rules
        )
        if firing:
            wake = signals.pipeline | "RestoredFiring" >> beam.Create([(key, None) for key in firing])
            keyed = (keyed, wake) | "WithRestored" >> beam.Flatten()
        return keyed | "Lifecycle" >> beam.ParDo(AlertLifecycle(self.ruleset, self.restored, self.floor))


def latest_alerts(alerts) -> dict[str, dict]:
    """The last state of each (rule, place) among decoded alerts (highest window, then sequence)."""
    latest: dict[str, dict] = {}
    for alert in alerts:
        key = track_key(alert["rule_id"], place_of(alert))
        rank = (epoch_ms(alert["last_updated"]), alert["sequence"])
        held = latest.get(key)
        if held is None or rank >= (epoch_ms(held["last_updated"]), held["sequence"]):
            latest[key] = alert
    return latest
