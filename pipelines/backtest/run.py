"""`tocsin backtest`: replay files, score the alerts against episodes, write scores.json and report.html.

Everything here composes the pure parts (episodes, score, sweep) with the replay; nothing here decides.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tocsin.pipelines.backtest import replay, score
from tocsin.pipelines.backtest.episodes import Episode
from tocsin.pipelines.backtest.report import write_report
from tocsin.pipelines.backtest.sweep import sweep
from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.indicators.job import Settings
from tocsin.pipelines.indicators.readfold import processes_default
from tocsin.pipelines.rules.config import RuleSet
from tocsin.pipelines.rules.dryrun import SortedSignals, dry_run
from tocsin.pipelines.windowspec import WindowSpec

SCHEMA_VERSION = 1
RUN_ONLY = ("seconds", "seconds_by_step", "events_per_second", "peak_rss_mib", "peak_rss_runner_mib")
METHOD_NOTE = (
    "An alert is active from its first window end until it resolves. An episode is warned when an alert "
    "of its country was active within the horizon before its start; the lead time is the start minus the "
    "first such day (positive = before). Alert-days outside every episode and its horizon are false "
    "alarms, per country-year outside them. A country-year is positive when it overlaps an episode or its "
    "horizon. Episodes at year resolution start on 1 January (lead times are then lower bounds)."
)


@dataclass
class Backtest:
    files: list[Path]
    episodes: list[Episode]
    ruleset: RuleSet
    catalogue: Catalogue
    report_dir: Path
    horizon_days: int = 365
    countries: list[str] = field(default_factory=list)  # none, one for every file, or one per file
    start: dt.date | None = None
    end: dt.date | None = None
    sweeps: list[tuple[str, list[float]]] = field(default_factory=list)
    beam_args: list[str] = field(default_factory=list)
    show_progress: bool = True
    processes: int = field(default_factory=processes_default)  # that read and fold the files


def settings_for(ruleset: RuleSet, catalogue: Catalogue):
    windows, by_region = replay.rule_windows(ruleset)
    # Final panes only: no early panes, no lateness (in batch every record is on time); and only the
    # indicators each window spec's rules read.
    return Settings(
        catalogue,
        windows,
        allowed_lateness_s=0,
        by_region=by_region,
        indicators_by_window=replay.rule_indicators(ruleset),
    )


def run(job: Backtest) -> dict:
    """Replay, decide, score; write the report directory; return the result (scores and what is plotted)."""
    job.report_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="backtest-", dir=job.report_dir))
    try:
        columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn())
        with Progress(*columns, disable=not job.show_progress, transient=False) as progress:
            reading = progress.add_task("reading files", total=None)
            settings = settings_for(job.ruleset, job.catalogue)
            read_from = time.perf_counter()
            partials, stats = _read(job, work, settings, lambda label, n: progress.advance(reading, n))
            stats.seconds["read"] = round(time.perf_counter() - read_from, 3)
            progress.update(reading, description=f"read {stats.events:,} records", total=stats.events)
            deciding = progress.add_task(f"signals of {stats.observations:,} observations", total=None)
            with replay.Timer(stats, "signals"):
                files = replay.compute_signals(partials, settings, job.report_dir, job.beam_args)
            # In decision order from sorted runs on disk, not held: a replay has millions of signals.
            signals = SortedSignals(replay.read_signals(files), directory=work)
            stats.signals = len(signals)
            progress.update(deciding, description=f"alerts from {len(signals):,} signals")
            with replay.Timer(stats, "alerts"):
                alerts = dry_run(job.ruleset, signals, ordered=True)
            progress.update(deciding, total=1, completed=1)
            period = _period(job, stats)
            countries = sorted(set(job.countries)) if job.countries else sorted(stats.countries)
            with replay.Timer(stats, "score"):
                scores = score.score(
                    alerts,
                    job.episodes,
                    countries,
                    period,
                    job.horizon_days,
                    rule_ids=[r.id for r in job.ruleset.rules],
                )
                sweeps = _sweeps(job, signals, countries, period, progress)
            plotted = series(signals, countries, job.ruleset)
        shutil.move(str(work / "deadletters.jsonl"), job.report_dir / "deadletters.jsonl")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    elapsed = time.perf_counter() - started
    stats.seconds["total"] = round(elapsed, 3)
    result = {
        "scores": {
            "schema_version": SCHEMA_VERSION,
            "method": {
                "horizon_days": job.horizon_days,
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "countries": countries,
                "rules": [{"id": r.id, "version": r.version, "window": r.window} for r in job.ruleset.rules],
                "note": METHOD_NOTE,
            },
            "inputs": _inputs(job, stats, elapsed),
            **scores,
            "sweeps": sweeps,
        },
        "series": plotted,
        "alerts": [_slim(a) for a in alerts],
        "episodes": scores["episodes"],
        "sweeps": sweeps,
    }
    _write(job.report_dir, result, alerts)
    return result


def file_countries(files: list[Path], countries: list[str]) -> list[tuple[Path, str | None]]:
    """Pair files with the --country given: none, one for all, or one per file in order."""
    if len(countries) > 1 and len(countries) != len(files):
        raise ValueError(
            f"--country: {len(countries)} countries for {len(files)} files: give one for all the files, "
            "or one per --from-file, in the same order"
        )
    if len(countries) == 1:
        return [(f, countries[0]) for f in files]
    return list(zip(files, countries or [None] * len(files), strict=True))


def _read(job: Backtest, work: Path, settings, advance):
    inputs = file_countries(job.files, job.countries)
    return replay.read_observations(
        inputs, work, settings, start=job.start, end=job.end, processes=job.processes, advance=advance
    )


def _period(job: Backtest, stats: replay.ReplayStats) -> score.Period:
    def day(ms):
        return dt.date.fromordinal(score.day_of(ms))

    first = job.start or (day(stats.first_ms) if stats.first_ms is not None else dt.date.today())
    last = job.end or (day(stats.last_ms) if stats.last_ms is not None else first)
    return score.Period(first, max(first, last))


def _sweeps(job: Backtest, signals, countries, period, progress) -> list[dict]:
    out = []
    for rule_id, values in job.sweeps:
        task = progress.add_task(f"sweep {rule_id}", total=len(values))

        def decide(variant, task=task):
            progress.advance(task)
            return dry_run(variant, signals, ordered=True)

        def judge(alerts):  # the variant raised alerts of its one rule only: their totals are its own
            return score.totals(
                score.spans(alerts, period), job.episodes, countries, period, job.horizon_days
            )

        out.append(sweep(job.ruleset, rule_id, values, decide, judge))
    return out


def _inputs(job: Backtest, stats: replay.ReplayStats, elapsed: float) -> dict:
    rss = replay.peak_rss_mib()
    return {
        "files": [p.name for p in job.files],
        "events": stats.events,
        "observations": stats.observations,
        "outside_period": stats.outside_period,
        "dead_letters": stats.dead_letters,
        "signals": stats.signals,
        "seconds": round(elapsed, 2),
        "seconds_by_step": stats.seconds,
        "events_per_second": round(stats.events / elapsed, 1) if elapsed else None,
        "peak_rss_mib": rss["python"],
        "peak_rss_runner_mib": rss["runner"],
    }


def series_spec(ruleset: RuleSet) -> str | None:
    """The window spec plotted per country: the longest one with a period of a day or more."""
    windows, _ = replay.rule_windows(ruleset)
    daily = [w for w in windows if w.period_s >= 86_400] or windows
    return max(daily, key=lambda w: (w.size_s, w.period_s)).label() if daily else None


def series(signals: Iterable[dict], countries: list[str], ruleset: RuleSet) -> dict:
    """Per country: each indicator's count per window of the plotted spec, with zeros across gaps."""

    label = series_spec(ruleset)
    if label is None:
        return {}
    spec = WindowSpec.parse(label)
    size_ms, period_ms = spec.size_s * 1000, spec.period_s * 1000
    wanted = set(countries)
    points: dict[str, dict[str, dict[int, int]]] = defaultdict(lambda: defaultdict(dict))
    for s in signals:
        if s.get("region") or s["country"] not in wanted:
            continue
        if s["window_end"] - s["window_start"] != size_ms or s["window_end"] % period_ms:
            continue
        points[s["country"]][s["indicator_id"]][s["window_end"]] = s["count"]
    out = {}
    for country in sorted(points):
        indicators = {}
        for indicator, by_end in sorted(points[country].items()):
            line: list[list[int]] = []
            for end in sorted(by_end):
                if line and end - line[-1][0] > period_ms:  # no signal: zero, not a straight line
                    line.append([line[-1][0] + period_ms, 0])
                    if end - period_ms > line[-1][0]:
                        line.append([end - period_ms, 0])
                line.append([end, by_end[end]])
            indicators[indicator] = line
        out[country] = {"window": label, "indicators": indicators}
    return out


def _slim(alert: dict) -> dict:
    keep = ("id", "sequence", "rule_id", "status", "severity", "country", "region", "window_end", "summary")
    return {k: alert.get(k) for k in keep}


def _write(directory: Path, result: dict, alerts: list[dict]) -> None:
    # scores.json depends on the input alone (same input, same bytes); the run's timings go to run.json.
    scores = dict(result["scores"])
    scores["inputs"] = {k: v for k, v in scores["inputs"].items() if k not in RUN_ONLY}
    (directory / "scores.json").write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n", "utf-8")
    run_info = {k: result["scores"]["inputs"][k] for k in RUN_ONLY}
    (directory / "run.json").write_text(json.dumps(run_info, indent=2, sort_keys=True) + "\n", "utf-8")
    with (directory / "alerts.jsonl").open("w", encoding="utf-8") as out:
        for alert in alerts:
            out.write(json.dumps(alert, sort_keys=True) + "\n")
    write_report(directory, result)
