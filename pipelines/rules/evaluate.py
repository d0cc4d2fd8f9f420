"""evaluate(rule, series, end): what a rule measures at one window, pure.

A series holds, for one place and one window spec, the latest pane of each indicator's signal per window
end: {end_ms: {indicator_id: {count, weighted_count, fatalities, distinct_sources, evidence}}}. A window
with no signal counted nothing: it is zero, not unknown, once the place has a signal in the rule's history.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from tocsin.pipelines.rules.config import CORROBORATION, SEVERITIES, Rule

# How an alert names the corroboration its rule counted.
SOURCES_NAME = {
    "any": "distinct sources",
    "publishers": "distinct publishers",
    "reported": "sources reported",
}

MAX_EVIDENCE = 10
STD_FLOOR = 1.0  # z-scores over a flat baseline: going from 0 to 3 events is 3 sigma, not infinity
RATIO_FLOOR = 1.0  # ratios against empty windows: 0 -> 3 events is a ratio of 3


@dataclass(frozen=True)
class Evaluation:
    value: float  # what the levels are compared with
    current: float  # the field itself at this window (or the score)
    level: str | None  # highest severity reached, None when below every level or not ready
    active: bool | None  # value still at or above resolve_below; None when unknown (short history)
    sources: int
    values: list[dict] = field(default_factory=list)  # RuleValue records explaining the decision
    evidence: list[dict] = field(default_factory=list)


def field_at(series: dict, end: int, indicator: str, name: str) -> float:
    return float(series.get(end, {}).get(indicator, {}).get(name, 0))


def measured_at(rule: Rule, series: dict, end: int) -> float:
    """The rule's field at one window, as a percentage of its `share_of` indicator's count if it has one
    (0 when the place had no report at all then)."""
    value = field_at(series, end, rule.indicator, rule.field)
    if rule.share_of is None:
        return value
    volume = field_at(series, end, rule.share_of, "count")
    return 100.0 * value / volume if volume else 0.0


def measure(rule: Rule, series: dict, end: int) -> tuple[float, float, bool, list]:
    """(value, current, ready, explaining values) of a rule at one window end."""
    size = rule.size_ms
    if rule.kind == "risk_score":
        total = sum(w.weight for w in rule.indicators.values())
        score, parts = 0.0, []
        for name, w in sorted(rule.indicators.items()):
            v = field_at(series, end, name, rule.field)
            score += w.weight * min(v / w.saturation, 1.0)
            parts.append(_value(f"{name} {rule.field} (weight {w.weight:g})", v, w.saturation, ">="))
        score = round(100.0 * score / total, 2)
        return score, score, True, parts
    current = measured_at(rule, series, end)
    name = _series_name(rule)
    if rule.kind == "threshold":
        return current, current, True, []
    # Only windows since the place's first signal are history: before that nothing is known (a place's
    # first signal is not a rise from zero). Its first signal within the rule's history (the windows the
    # job keeps and re-reads after a restart, `Rule.history_windows`), not ever: a decision then reads
    # only what a restarted job re-reads and a replay started later holds too, so neither changes it.
    back = rule.previous_windows if rule.kind == "rate_of_change" else rule.baseline_windows
    ends = [end - k * size for k in range(1, back + 1)]
    horizon = end - rule.history_windows * size
    seen = [e for e in series if horizon <= e < end]
    known = [e for e in ends if seen and e >= min(seen)]
    history = [measured_at(rule, series, e) for e in known]
    if rule.kind == "rate_of_change":
        if not history:
            return 0.0, current, False, [_value("previous windows known", 0, 1, ">=")]
        mean = sum(history) / len(history)
        extra = [_value(f"{name} mean of previous {len(history)} windows", mean, 0, ">=")]
        return current / max(mean, RATIO_FLOOR), current, True, extra
    ready = len(history) >= rule.min_history_windows
    if not history:
        return 0.0, current, False, [_value("baseline windows", 0, rule.min_history_windows, ">=")]
    mean = statistics.fmean(history)
    std = statistics.pstdev(history)
    extra = [
        _value(f"{name} baseline mean over {len(history)} windows", mean, 0, ">="),
        _value("baseline windows", len(history), rule.min_history_windows, ">="),
    ]
    if rule.anomaly_method == "ratio":
        return current / max(mean, RATIO_FLOOR), current, ready, extra
    return (current - mean) / max(std, STD_FLOOR), current, ready, extra


def evaluate(rule: Rule, series: dict, end: int) -> Evaluation:
    value, current, ready, extra = measure(rule, series, end)
    value = round(value, 4)
    raw = current if rule.kind == "risk_score" else field_at(series, end, rule.indicator, rule.field)
    floor_ok = raw >= rule.floor
    level = None
    if ready and floor_ok:
        reached = [s for s in SEVERITIES if s in rule.levels and value >= rule.levels[s]]
        level = reached[-1] if reached else None
    active = (value >= rule.resolve_threshold and floor_ok) if ready else None
    corroboration = CORROBORATION[rule.corroboration]
    sources = int(max((field_at(series, end, i, corroboration) for i in rule.indicator_ids), default=0))
    threshold = rule.levels[level] if level else min(rule.levels.values())
    values = [_value(_measured(rule), value, threshold, ">="), *extra]
    if rule.floor:
        values.append(_value(f"{rule.indicator} {rule.field}", raw, rule.floor, ">="))
    values.append(_value(SOURCES_NAME[rule.corroboration], sources, rule.min_sources, ">="))
    return Evaluation(value, current, level, active, sources, values, _evidence(rule, series, end))


def breached(rule: Rule, series: dict, end: int) -> bool:
    """Whether one window meets the firing condition (a level and the minimum of distinct sources)."""
    ev = evaluate(rule, series, end)
    return ev.level is not None and ev.sources >= rule.min_sources


def _measured(rule: Rule) -> str:
    if rule.kind == "risk_score":
        return "risk score (0-100)"
    base = _series_name(rule)
    if rule.kind == "rate_of_change":
        return f"{base} / mean of previous {rule.previous_windows} windows"
    if rule.kind == "anomaly":
        how = "z-score" if rule.anomaly_method == "zscore" else "ratio to mean"
        return f"{base} {how} against {rule.baseline_windows}-window baseline"
    return base


def _series_name(rule: Rule) -> str:
    """What a threshold, rate or anomaly rule reads: its indicator's field, or its share of a volume."""
    return f"{rule.indicator} {rule.field}" + (f" % of {rule.share_of}" if rule.share_of else "")


def _value(name: str, value: float, threshold: float, comparator: str) -> dict:
    return {"name": name, "value": float(value), "threshold": float(threshold), "comparator": comparator}


def _evidence(rule: Rule, series: dict, end: int) -> list[dict]:
    """The window's evidence across the rule's indicators, one per source record, in signal order."""
    seen, out = set(), []
    for indicator in rule.indicator_ids:
        for item in series.get(end, {}).get(indicator, {}).get("evidence", []):
            if item["source_id"] not in seen:
                seen.add(item["source_id"])
                out.append(
                    {
                        "record_id": item["source_id"],
                        "title": item.get("title"),
                        "url": item.get("url"),
                        "source": item.get("origin"),
                    }
                )
    return out[:MAX_EVIDENCE]
