"""Replay history through the streaming jobs' own transforms, in batch: files -> observations -> signals
-> alerts.

1. Read: every input file with the parsers the connectors use (`tocsin/formats/files.py`), normalised by the
   indicator job's normaliser; `--from`/`--to` keep the events in the period; rejects become dead letters
   (JSON lines in the work directory) with their reason. Observations go to JSON-lines shards, so the
   replay never holds the input in memory.
2. Signals: the indicator job's transforms (classify and fold each shard into partials as it is read,
   then de-duplicating sliding windows) as a Beam batch pipeline on the same runner (Prism by default),
   for the window specs the rules read, with no early panes and no lateness: each window's final pane
   once, as a replay should emit it.
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

from tocsin.pipelines.indicators.job import ShardWriter, dead_letter_json, normalised_files, read_shard
from tocsin.pipelines.indicators.transforms import FoldObservations
from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.runners import batch_options

STAGE = "backtest"


@dataclass
class ReplayStats:
    events: int = 0  # records read from the files (valid or not)
    observations: int = 0
    outside_period: int = 0
    dead_letters: int = 0
    signals: int = 0
    countries: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    def seen(self, observation: dict) -> None:
        t = observation["event_time"]
        self.first_ms = t if self.first_ms is None else min(self.first_ms, t)
        self.last_ms = t if self.last_ms is None else max(self.last_ms, t)
        if observation.get("country"):
            self.countries.add(observation["country"])


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
    *,
    start: dt.date | None = None,
    end: dt.date | None = None,
    advance: Callable[[str, int], None] = lambda label, n: None,
) -> tuple[list[Path], ReplayStats]:
    """Normalise every record of the (file, country) inputs into JSON-lines shards in `workdir`; dead
    letters beside them. The country is for files that do not say theirs (a ReliefWeb listing)."""

    stats = ReplayStats()
    lo = _ms(start) if start else None
    hi = _ms(end + dt.timedelta(days=1)) if end else None
    out = ShardWriter(workdir)
    letters = (workdir / "deadletters.jsonl").open("w", encoding="utf-8")
    try:
        for path, country in inputs:
            for observation, letter in normalised_files(path, country, stage=STAGE):
                stats.events += 1
                advance(path.name, 1)
                if letter is not None:
                    letters.write(json.dumps(dead_letter_json(letter), sort_keys=True) + "\n")
                    stats.dead_letters += 1
                    continue
                t = observation["event_time"]
                if (lo is not None and t < lo) or (hi is not None and t >= hi):
                    stats.outside_period += 1
                    continue
                out.write(observation)
                stats.observations += 1
                stats.seen(observation)
    finally:
        letters.close()
        out.close()
    return out.shards, stats


def compute_signals(shards: list[Path], settings, workdir: Path, beam_args: list[str]) -> list[Path]:
    """Run the indicator transforms over the shards on a Beam runner; the signal files written."""

    prefix = str(workdir / "signals")
    for old in glob.glob(prefix + "-*"):
        Path(old).unlink()
    if not shards:
        return []
    with beam.Pipeline(options=batch_options(beam_args)) as pipeline:
        _ = (
            pipeline
            | "Shards" >> beam.Create([str(s) for s in shards], reshuffle=False)
            # Each shard's observations are folded into partials as they are read (slices.py).
            | "ReadAndFold" >> beam.ParDo(FoldObservations(settings.slices(), read=read_shard))
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
