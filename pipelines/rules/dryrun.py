"""`tocsin rules test`: run rules over recorded signals, in event-time order, without Beam or Kafka.

The same pure lifecycle, decided in the same order as the pipeline's: signals are replayed by window
end (then pane), each to the rules that read it; before a place's window is decided, its earlier windows
without a complete pane are decided on what they got; and as the replay's watermark (the window end being
replayed) passes a period beyond a firing alert's next window, that window is decided too, as the
pipeline's timer does. Alerts still firing at the end of the signals stay so.
"""

from __future__ import annotations

import heapq
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.rules.lifecycle import (
    Track,
    absent_before,
    decision_order,
    groups_in_order,
    keyed_by_rule,
    observe_window,
    restore,
    window_groups,
)

RUN = 100_000  # signals sorted in memory at a time; a replay's millions are merged from runs on disk


def read_signals(path: Path) -> list[dict]:
    """Signals as JSON lines (`tocsin pipeline indicators --batch --output-file`), all in memory."""
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def signal_lines(paths: Iterable[Path]) -> Iterator[dict]:
    """Signals of JSON-lines files, one at a time; ValueError on a line that is not JSON."""
    for path in paths:
        with open(path, "rb") as lines:
            for line in lines:
                if line.strip():
                    yield orjson.loads(line)


class SortedSignals:
    """Signals in decision order without holding them: sorted in runs of `run`, each run written to a
    file, and merged (heapq.merge) each time they are iterated, so a back-test can replay them once per
    sweep. `keep` drops signals no rule reads before anything is sorted. `count` is how many were kept.
    Use as a context manager: the runs are deleted at exit."""

    def __init__(self, signals: Iterable[dict], keep=None, run: int = RUN, directory: Path | None = None):
        self._dir = tempfile.TemporaryDirectory(prefix="tocsin-signals-", dir=directory)
        self.runs: list[str] = []
        self.count = 0
        batch: list[dict] = []
        for signal in signals:
            if keep is not None and not keep(signal):
                continue
            batch.append(signal)
            self.count += 1
            if len(batch) >= run:
                self._write(batch)
                batch = []
        self._held = sorted(batch, key=decision_order) if not self.runs else None
        if batch and self.runs:
            self._write(batch)

    def _write(self, batch: list[dict]) -> None:
        path = os.path.join(self._dir.name, f"run-{len(self.runs):05d}.jsonl")
        with open(path, "wb") as out:
            out.writelines(
                orjson.dumps(s, option=orjson.OPT_APPEND_NEWLINE) for s in sorted(batch, key=decision_order)
            )
        self.runs.append(path)

    def __iter__(self) -> Iterator[dict]:
        if self._held is not None:  # one run: kept in memory, never written
            return iter(self._held)
        return heapq.merge(*(signal_lines([run]) for run in self.runs), key=decision_order)

    def __len__(self) -> int:
        return self.count

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._dir.cleanup()


def read_by_rules(ruleset: RuleSet):
    """The `keep` of SortedSignals: a signal some rule reads."""
    return lambda signal: any(True for _ in keyed_by_rule(ruleset, signal))


def dry_run(
    ruleset: RuleSet,
    signals: Iterable[dict],
    restored: dict | None = None,
    floor: int | None = None,
    ordered: bool = False,
) -> list[dict]:
    """The alert events the rules decide over `signals`; `restored` (the last alert per track key) and
    `floor` (the commit's emit_after) resume a run as the job resumes after a restart. With `ordered`,
    the signals are already in decision order (SortedSignals) and are read one window at a time."""
    restored = restored or {}
    rules = {r.id for r in ruleset.rules}
    tracks: dict[str, Track] = {
        key: restore(*key.split("|", 1), alert, floor)
        for key, alert in restored.items()
        if key.split("|", 1)[0] in rules
    }
    # only a firing track has windows to decide when no signal comes (the job's wake-up elements)
    firing: dict[str, Track] = {key: track for key, track in tracks.items() if track.firing}
    emitted: list[dict] = []
    for group in groups_in_order(signals) if ordered else window_groups(list(signals)):
        end = decision_order(group[0])[0]
        for key, track in list(firing.items()):  # the watermark reached `end`
            rule = ruleset.by_id(track.rule_id)
            emitted += absent_before(track, rule, ruleset.risk_factors, end - rule.period_ms + 1)
            if not track.firing:
                del firing[key]
        per_track: dict[str, list[dict]] = {}
        for signal in group:
            for key, keyed in keyed_by_rule(ruleset, signal):
                per_track.setdefault(key, []).append(keyed)
        for key, panes in per_track.items():  # one decision per track and window, as the Beam stage
            track = tracks.get(key)
            if track is None:
                rule_id, place = key.split("|", 1)
                track = tracks[key] = restore(rule_id, place, None, floor)
            rule = ruleset.by_id(track.rule_id)
            if panes[0].get("pane") != "EARLY":
                emitted += absent_before(track, rule, ruleset.risk_factors, end)
            emitted += observe_window(track, rule, ruleset.risk_factors, panes)
            if track.firing:
                firing[key] = track
            else:
                firing.pop(key, None)
    return emitted


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
