"""Beam stage: indicator signals -> alert events, with the lifecycle of each (rule, place) in Beam state.

`Alerts(ruleset, restored)` composes two steps: KeyByRule sends each signal to every rule that reads it
(its indicator, window spec and kind of place), keyed "rule_id|place"; AlertLifecycle keeps a Track per key
in state and emits what `lifecycle.observe` / `lifecycle.absent` decide. While an alert fires, an
event-time timer decides a window that got no signal at all as zero, once the input watermark is a whole
window past it (signals carry their window start as event time, and early panes of later windows can
arrive before the on-time pane of an earlier one: the margin keeps a quiet window from being decided
before its real pane is read).
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.rules.lifecycle import (
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
    TRACK = ReadModifyWriteStateSpec("track", PickleCoder())
    ABSENT = TimerSpec("absent", TimeDomain.WATERMARK)

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
        state=beam.DoFn.StateParam(TRACK),
        timer=beam.DoFn.TimerParam(ABSENT),
    ):
        key, signal = element
        track = self._track(key, state)
        rule = self.ruleset.by_id(track.rule_id)
        EVALUATIONS.labels(rule.id).inc()
        events = observe(track, rule, self.ruleset.risk_factors, signal)
        state.write(track)
        self._arm(track, rule, timer)
        yield from _counted(events)

    @on_timer(ABSENT)
    def on_absent(
        self,
        key=beam.DoFn.KeyParam,
        fired=beam.DoFn.TimestampParam,
        state=beam.DoFn.StateParam(TRACK),
        timer=beam.DoFn.TimerParam(ABSENT),
    ):
        track = state.read()
        if track is None:
            return
        rule = self.ruleset.by_id(track.rule_id)
        check = next_absent_check(track, rule)
        if check is None or fired.micros // 1000 < check + rule.size_ms:
            return  # the window got its signal after the timer was set (a later timer is armed)
        events = absent(track, rule, self.ruleset.risk_factors, check)
        state.write(track)
        self._arm(track, rule, timer)
        yield from _counted(events)

    @staticmethod
    def _arm(track, rule, timer) -> None:
        check = next_absent_check(track, rule)
        if check is not None:
            timer.set(Timestamp(micros=(check + rule.size_ms) * 1000))


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
