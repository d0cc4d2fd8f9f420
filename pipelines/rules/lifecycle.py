"""The alert lifecycle of one (rule, place), pure: firing -> updated -> resolved, with no repeats.

A Track is the state Beam keeps per (rule, place): the recent series of signals, the last window decided
on complete data, and the last alert emitted. `observe(track, signal)` and `absent(track, end)` return
the alert events to emit (zero or one), so the same code runs in the pipeline and in `tocsin rules test`.

Decisions:
- an ON_TIME or LATE pane completes a window: the rule is evaluated at the latest complete window (a
  late pane revising an older window re-evaluates that latest window, whose history changed);
- an EARLY pane holds a lower bound of its window (panes accumulate), so it may raise an alert or its
  severity early, never lower or resolve one;
- a window with no signal at all counted nothing: `absent` evaluates it as zero, so an alert whose
  signals stop still resolves;
- an alert is emitted only when its status, severity or evidence changes: an unchanged alert is not
  repeated on every window, nor on a replay (a Track restored from the alert topic emits nothing until
  its series has been rebuilt past the restored alert's window).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from tocsin.pipelines.rules.config import SEVERITIES, Rule
from tocsin.pipelines.rules.evaluate import Evaluation, breached, evaluate
from tocsin.timestamps import epoch_ms, iso_minutes

FIRING, UPDATED, RESOLVED = "FIRING", "UPDATED", "RESOLVED"
COMPLETE_PANES = ("ON_TIME", "LATE", "UNKNOWN")
PANE_ORDER = {"EARLY": 0, "ON_TIME": 1, "UNKNOWN": 1, "LATE": 2}  # panes of one window, in emission order
SIGNAL_FIELDS = ("count", "weighted_count", "fatalities", "distinct_sources")
SOURCE_COUNTS = ("distinct_origins", "reported_sources")  # 0 in signals written before they existed


@dataclass
class Track:
    rule_id: str
    place: str  # ISO3, or ISO3/region
    series: dict = field(default_factory=dict)  # {end_ms: {indicator: {fields..., evidence, pane_index}}}
    decided_end: int | None = None  # latest window decided on complete data
    alert: dict | None = None  # last alert emitted (or restored)
    quiet_until: int | None = None  # restored: emit nothing until a window past this end is decided
    raised_end: int | None = (
        None  # an early pane of this window raised the alert: earlier windows can't lower it
    )

    @property
    def firing(self) -> bool:
        return self.alert is not None and self.alert["status"] != RESOLVED


def place_of(signal: dict) -> str:
    return f"{signal['country']}/{signal['region']}" if signal.get("region") else signal["country"]


def track_key(rule_id: str, place: str) -> str:
    return f"{rule_id}|{place}"


def keyed_by_rule(ruleset, signal: dict):
    """(track key, signal) for each rule reading the signal."""
    start, end = epoch_ms(signal["window_start"]), epoch_ms(signal["window_end"])
    for rule in ruleset.reading(signal["indicator_id"], start, end, bool(signal.get("region"))):
        yield track_key(rule.id, place_of(signal)), signal


def restore(rule_id: str, place: str, alert: dict | None, floor: int | None = None) -> Track:
    """A Track resumed after a restart: its last alert on the alert topic, and the commit's `floor`.

    Windows ending at or before the floor were decided before the restart (their events, if any, are
    on the alert topic), and so were those up to the last alert's window: the resumed track decides
    them again only to rebuild its series, quietly. Without the floor, a firing alert whose windows after
    its last event (unchanged, so never re-emitted) lie before the re-read signals would see them as
    empty and resolve: a restart would close a live warning.
    """
    track = Track(rule_id, place, alert=alert)
    ends = [e for e in (floor, alert and epoch_ms(alert["window_end"])) if e is not None]
    track.quiet_until = max(ends) if ends else None
    return track


def observe(track: Track, rule: Rule, risk_factors: dict, signal: dict) -> list[dict]:
    """Record one signal pane; return the alert event it causes, if any."""
    return observe_window(track, rule, risk_factors, [signal])


def _record(track: Track, signal: dict) -> bool:
    """Put a pane in the series; False for an older pane delivered after a newer one."""
    end = epoch_ms(signal["window_end"])
    slot = track.series.setdefault(end, {})
    held = slot.get(signal["indicator_id"])
    if held is not None and held["pane_index"] > signal.get("pane_index", 0):
        return False
    slot[signal["indicator_id"]] = {
        **{k: signal[k] for k in SIGNAL_FIELDS},
        **{k: signal.get(k, 0) for k in SOURCE_COUNTS},
        "evidence": signal.get("evidence", []),
        "pane_index": signal.get("pane_index", 0),
    }
    return True


def window_groups(signals: list[dict]) -> list[list[dict]]:
    """Signals in decision order, grouped by window end and kind of pane: one decision per group."""
    return list(groups_in_order(sorted(signals, key=decision_order)))


def groups_in_order(signals: Iterable[dict]) -> Iterator[list[dict]]:
    """The groups of `window_groups`, of signals already in decision order, one group at a time."""
    group: list[dict] = []
    key = None
    for signal in signals:
        at = decision_order(signal)[:2]
        if group and at != key:
            yield group
            group = []
        group.append(signal)
        key = at
    if group:
        yield group


def observe_window(track: Track, rule: Rule, risk_factors: dict, signals: list[dict]) -> list[dict]:
    """Record every pane of one window (its end and kind of pane alike), then decide once.

    A risk score reads several indicators: deciding on each indicator's signal as it comes would fire
    on the first and resolve or update on the next, within one window. All of a window's signals are in
    the series before the rule is evaluated, so the score is decided once per place and window.
    """
    recorded = [s for s in signals if _record(track, s)]
    if not recorded:
        return []
    signal = recorded[-1]
    end = epoch_ms(signal["window_end"])
    complete = signal.get("pane", "UNKNOWN") in COMPLETE_PANES
    if complete:
        at = end if track.decided_end is None else max(end, track.decided_end)
        track.decided_end = at
        _prune(track, rule)
        return _decide(track, rule, risk_factors, at, complete=True)
    if track.decided_end is not None and end <= track.decided_end:
        return []  # an early pane of a window already decided adds nothing the on-time pane lacked
    return _decide(track, rule, risk_factors, end, complete=False)


def absent(track: Track, rule: Rule, risk_factors: dict, end: int) -> list[dict]:
    """Decide a window whose complete pane never came (the watermark passed it) on what it got: nothing,
    so zero, or the early panes it had."""
    if track.decided_end is not None and end <= track.decided_end:
        return []
    track.decided_end = end
    _prune(track, rule)
    return _decide(track, rule, risk_factors, end, complete=True)


def next_absent_check(track: Track, rule: Rule) -> int | None:
    """The next window to decide even if no complete pane arrives for it; only a firing alert needs one."""
    if not track.firing:
        return None
    if track.decided_end is not None:
        return track.decided_end + rule.period_ms
    if track.raised_end is not None:
        return track.raised_end  # raised by an early pane: its window must still be decided
    if track.quiet_until is not None:
        return track.quiet_until + rule.period_ms
    return None


def signal_event_time(signal: dict) -> int:
    """Event time (ms) the alert stage gives a signal: see the module's docstring."""
    return epoch_ms(signal["window_start"] if signal.get("pane") == "EARLY" else signal["window_end"])


def decision_order(signal: dict) -> tuple:
    """Window end, then pane; then the indicator and the signal id, so that two signals of one window
    (a risk score reads several indicators) are always decided in the same order: the same input gives
    the same alerts on every replay."""
    return (
        epoch_ms(signal["window_end"]),
        PANE_ORDER.get(signal.get("pane"), 1),
        signal.get("pane_index", 0),
        signal.get("indicator_id", ""),
        signal.get("id", ""),
    )


def absent_before(track: Track, rule: Rule, risk_factors: dict, end_ms: int) -> list[dict]:
    """Decide every window of a firing alert ending before end_ms with no complete pane: on what it got
    (nothing, so zero; or an early pane whose on-time pane never came)."""
    events = []
    check = next_absent_check(track, rule)
    while check is not None and check < end_ms:
        events += absent(track, rule, risk_factors, check)
        check = next_absent_check(track, rule)
    return events


def absent_due(track: Track, rule: Rule) -> int | None:
    """When to decide the next window of a firing alert if no signal comes: a period past its end, a
    margin for on-time panes of that window still in flight in another partition."""
    check = next_absent_check(track, rule)
    return None if check is None else check + rule.period_ms


def _decide(track: Track, rule: Rule, risk_factors: dict, end: int, complete: bool) -> list[dict]:
    if complete and track.raised_end is not None:
        if end < track.raised_end:
            complete = False  # a later window's early pane already raised the alert: no flapping back
        else:
            track.raised_end = None
    ev = evaluate(rule, track.series, end)
    new = _next_state(track, rule, risk_factors, end, ev, complete)
    if track.quiet_until is not None:
        if end <= track.quiet_until:
            return []  # rebuilding the history of a restored alert: it was decided before the restart
        if complete:
            # Only a complete window past it ends the replay. An early pane of a later window comes
            # first after a restart (decided at once, while re-read complete panes wait for the
            # watermark); had it ended the quiet, that history would be decided and emitted again.
            track.quiet_until = None
    if new is None:
        return []
    if not complete:
        track.raised_end = end
    track.alert = new
    return [new]


def _next_state(track: Track, rule: Rule, risk_factors: dict, end: int, ev: Evaluation, complete: bool):
    previous = track.alert
    if not track.firing:
        if ev.level is None or ev.sources < rule.min_sources:
            return None
        for k in range(1, rule.for_windows):
            if not breached(rule, track.series, end - k * rule.period_ms):
                return None
        return _alert(rule, risk_factors, track.place, end, ev, FIRING, None, ev.level)
    if complete and ev.active is False:
        values = [{**ev.values[0], "threshold": rule.resolve_threshold, "comparator": "<"}, *ev.values[1:]]
        return _alert(
            rule, risk_factors, track.place, end, ev, RESOLVED, previous, previous["severity"].lower(), values
        )
    lowest = next(s for s in SEVERITIES if s in rule.levels)
    severity = ev.level or lowest  # between resolve_below and the lowest level: hysteresis keeps it open
    before = previous["severity"].lower()
    if not complete and SEVERITIES.index(severity) <= SEVERITIES.index(before):
        return None  # early panes only raise
    evidence = ev.evidence or previous["evidence"]
    if severity == before and [e["record_id"] for e in evidence] == [
        e["record_id"] for e in previous["evidence"]
    ]:
        return None
    return _alert(rule, risk_factors, track.place, end, ev, UPDATED, previous, severity)


def _alert(rule, risk_factors, place, end, ev: Evaluation, status, previous, severity, values=None) -> dict:
    country, _, region = place.partition("/")
    first = epoch_ms(previous["first_fired"]) if previous else end
    rfs = sorted({rf for i in rule.indicator_ids for rf in risk_factors.get(i, ())})
    alert = {
        "id": previous["id"] if previous else alert_id(rule.id, place, end),
        "sequence": previous["sequence"] + 1 if previous else 1,
        "rule_id": rule.id,
        "rule_version": rule.version,
        "status": status,
        "severity": severity.upper(),
        "country": country,
        "region": region or None,
        "risk_factors": rfs,
        "indicator_ids": list(rule.indicator_ids),
        "values": values or ev.values,
        "window_start": end - rule.size_ms,
        "window_end": end,
        "evidence": ev.evidence or (previous["evidence"] if previous and status != RESOLVED else []),
        "distinct_sources": ev.sources,
        "first_fired": first,
        "last_updated": end,
    }
    alert["summary"] = summary(rule, alert)
    alert["labels"] = labels(rule, alert)
    return alert


def alert_id(rule_id: str, place: str, fired_end_ms: int) -> str:
    """Deterministic: the same rule, place and first window give the same id on every replay."""
    return f"{rule_id}:{place}:{iso_minutes(fired_end_ms)}"


def summary(rule: Rule, alert: dict) -> str:
    main = alert["values"][0]
    where = alert["country"] + (f" ({alert['region']})" if alert["region"] else "")
    verb = {"FIRING": "fired", "UPDATED": "updated", "RESOLVED": "resolved"}[alert["status"]]
    how = "fell below" if alert["status"] == RESOLVED else "reached"
    return (
        f"{rule.id} {verb} for {where}: {main['name']} {how} "
        f"{main['threshold']:g} ({main['value']:g}) in the {rule.window.split('/')[0]} window ending "
        f"{iso_minutes(epoch_ms(alert['window_end']))}, from {alert['distinct_sources']} distinct sources; "
        f"severity {alert['severity'].lower()}."
    )


def labels(rule: Rule, alert: dict) -> dict[str, str]:
    out = {
        "alertname": rule.id,
        "rule": rule.id,
        "severity": alert["severity"].lower(),
        "country": alert["country"],
        "indicator": ",".join(alert["indicator_ids"]),
        "risk_factors": ",".join(f"rf{n}" for n in alert["risk_factors"]),
    }
    if alert["region"]:
        out["region"] = alert["region"]
    out.update({f"rf{n}": "true" for n in alert["risk_factors"]})
    out.update({org: "true" for org in memberships(alert["country"])})
    return out


@lru_cache(maxsize=1)
def _membership_table() -> dict[str, tuple[str, ...]]:
    data = yaml.safe_load((Path(__file__).parent / "memberships.yaml").read_text(encoding="utf-8"))
    table: dict[str, list[str]] = {}
    for org, members in data.items():
        for country in members:
            table.setdefault(country, []).append(org)
    return {c: tuple(sorted(orgs)) for c, orgs in table.items()}


def memberships(country: str) -> tuple[str, ...]:
    return _membership_table().get(country, ())


def _prune(track: Track, rule: Rule) -> None:
    """Keep only the windows an evaluation can still read (history before the decided window)."""
    horizon = track.decided_end - rule.history_windows * rule.size_ms
    for end in [e for e in track.series if e < horizon]:
        del track.series[end]
