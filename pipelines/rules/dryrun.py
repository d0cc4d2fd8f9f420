"""`tocsin rules test`: run rules over recorded signals, in event-time order, without Beam or Kafka.

The same pure lifecycle as the pipeline: signals are replayed by window end (then pane), each to the rules
that read it; a firing alert whose signals stop is decided as zero once the replay is a whole window past
the missing window, as the pipeline's timer does. Alerts still firing at the end of the signals stay so.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path

from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.rules.lifecycle import (
    PANE_ORDER,
    Track,
    absent,
    keyed_by_rule,
    next_absent_check,
    observe,
    restore,
)


def read_signals(path: Path) -> list[dict]:
    """Signals as JSON lines (`tocsin pipeline indicators --batch --output-file`)."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def dry_run(ruleset: RuleSet, signals: Iterable[dict]) -> list[dict]:
    tracks: dict[str, Track] = {}
    emitted: list[dict] = []
    ordered = sorted(
        signals,
        key=lambda s: (_ms(s["window_end"]), PANE_ORDER.get(s.get("pane"), 1), s.get("pane_index", 0)),
    )
    for signal in ordered:
        now = _ms(signal["window_start"])  # the pipeline's event time for a signal
        emitted += _absent_until(ruleset, tracks, now)
        for key, keyed in keyed_by_rule(ruleset, signal):
            track = tracks.get(key)
            if track is None:
                rule_id, place = key.split("|", 1)
                track = tracks[key] = restore(rule_id, place, None)
            emitted += observe(track, ruleset.by_id(track.rule_id), ruleset.risk_factors, keyed)
    return emitted


def _absent_until(ruleset: RuleSet, tracks: dict, now_ms: int) -> list[dict]:
    out = []
    for track in tracks.values():
        rule = ruleset.by_id(track.rule_id)
        check = next_absent_check(track, rule)
        while check is not None and check + rule.period_ms <= now_ms:
            out += absent(track, rule, ruleset.risk_factors, check)
            check = next_absent_check(track, rule)
    return out


def describe(alert: dict) -> str:
    """Several lines saying what fired and why: the summary, each value against its threshold, evidence."""
    lines = [
        f"{alert['status']:8} {alert['severity']:8} {alert['id']}  (seq {alert['sequence']})",
        f"  {alert['summary']}",
    ]
    for v in alert["values"]:
        lines.append(f"    {v['name']}: {v['value']:g} {v['comparator']} {v['threshold']:g}")
    for e in alert["evidence"][:5]:
        lines.append(f"    evidence {e['record_id']}: {e.get('title') or ''} {e.get('url') or ''}".rstrip())
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert["labels"].items()))
    lines.append(f"    labels: {labels}")
    return "\n".join(lines)


def _ms(value) -> int:
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return int(value)
