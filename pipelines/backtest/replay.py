"""Replay history through the streaming jobs' own transforms, in batch: files -> observations -> signals
-> alerts.

1. Read: every input file with the parsers the connectors use (`tocsin/formats/files.py`), normalised by the
   indicator job's normaliser; `--from`/`--to` keep the events in the period; rejects become dead letters
   (JSON lines in the work directory) with their reason. The observations are classified and folded into
   partials as they are read, on every core (`indicators/readfold.py`): the replay never holds its input.
2. Signals: the indicator job's de-duplicating sliding windows, assembled from those partials, as a Beam
   batch pipeline on the same runner (Prism by default), for the window specs the rules read, with no
   early panes and no lateness: each window's final pane once, as a replay should emit it.
3. Alerts: the alert job's lifecycle, decided in the same order as its Beam stage (`rules.dryrun`), so
   that a back-test and the streaming alert job raise the same alerts on the same signals.
"""

from __future__ import annotations

import datetime as dt
import glob
import json
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import apache_beam as beam
import orjson

from tocsin.pipelines.indicators.job import dead_letter_json
from tocsin.pipelines.indicators.readfold import Period, ReadPartials, ReadStats, fold_units, units_of
from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.runners import batch_options

STAGE = "backtest"


@dataclass
class ReplayStats(ReadStats):
    signals: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def rule_windows(ruleset: RuleSet) -> tuple[list[WindowSpec], bool]:
    """The window specs the rules read, and whether any reads regions: all the signals a replay needs."""
    specs = {r.window: WindowSpec.parse(r.window) for r in ruleset.rules}
    return [specs[k] for k in sorted(specs)], any(r.per == "region" for r in ruleset.rules)


def rule_indicators(ruleset: RuleSet) -> dict[str, frozenset[str]]:
    """Window label -> the indicators some rule reads in windows of that spec."""
    wanted: dict[str, set[str]] = {}
    for rule in ruleset.rules:
        wanted.setdefault(rule.spec.label(), set()).update(rule.read_ids)
    return {label: frozenset(ids) for label, ids in wanted.items()}


def _ms(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp() * 1000)


def read_observations(
    inputs: list[tuple[Path, str | None]],
    workdir: Path,
    settings,
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    processes: int = 1,
    advance: Callable[[str, int], None] = lambda label, n: None,
) -> tuple[list[str], ReplayStats]:
    """Read, normalise and fold every record of the (file, country) inputs into partials files in
    `workdir` (readfold.py, on `processes` processes); dead letters to deadletters.jsonl beside them.
    The country is for files that do not say theirs (a ReliefWeb listing)."""

    period = Period(_ms(start) if start else None, _ms(end + dt.timedelta(days=1)) if end else None)
    units = units_of(inputs, processes)
    paths, letters, read = fold_units(
        units,
        settings.slices(),
        workdir,
        period=period,
        stage=STAGE,
        processes=processes,
        advance=lambda folded: advance("", folded.stats.events),
    )
    with (workdir / "deadletters.jsonl").open("w", encoding="utf-8") as out:
        for letter in letters:
            out.write(json.dumps(dead_letter_json(letter), sort_keys=True) + "\n")
    stats = ReplayStats(**vars(read))
    return paths, stats


def compute_signals(partials: list[str], settings, workdir: Path, beam_args: list[str]) -> list[Path]:
    """Assemble the windows of the folded partials on a Beam runner; the signal files written."""

    prefix = str(workdir / "signals")
    for old in glob.glob(prefix + "-*"):
        Path(old).unlink()
    if not partials:
        return []
    with beam.Pipeline(options=batch_options(beam_args)) as pipeline:
        _ = (
            pipeline
            | "Partials" >> beam.Create(partials, reshuffle=False)
            | "ReadPartials" >> beam.ParDo(ReadPartials())
            | "Signals" >> settings.windowed(final_only=True)
            | "Json" >> beam.Map(lambda s: orjson.dumps(s, option=orjson.OPT_SORT_KEYS).decode())
            | "Write" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl")
        )
    return sorted(Path(p) for p in glob.glob(prefix + "-*.jsonl"))


def read_signals(files: list[Path]) -> Iterator[dict]:
    for path in files:
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    yield _stable(json.loads(line))


def _stable(signal: dict) -> dict:
    """A signal without what differs between two replays of the same input (the wall clock)."""
    signal.pop("emitted_at", None)
    return signal


def peak_rss_mib() -> dict[str, float]:
    """Peak resident memory of this process (the SDK worker runs in it) and of finished children (the
    runner)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    # Beam stops the runner without waiting for it, so its peak is often not reported: None, not 0.
    return {"python": round(own, 1), "runner": round(children, 1) if children else None}


class Timer:
    def __init__(self, stats: ReplayStats, name: str):
        self.stats, self.name = stats, name

    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.stats.seconds[self.name] = round(time.perf_counter() - self.started, 3)
