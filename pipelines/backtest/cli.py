"""`tocsin backtest`: would tocsin have warned in time? Refusals are one line each and exit 1."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer

from tocsin.cli_errors import exit_with_errors


def _date(value: str | None, flag: str) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        typer.echo(f"{flag}: {value!r} is not a date (YYYY-MM-DD)", err=True)
        raise typer.Exit(1) from None


def backtest(
    ctx: typer.Context,
    from_file: Annotated[
        list[Path],
        typer.Option(
            "--from-file",
            help="UCDP GED CSV, GDELT export, ReliefWeb listing CSV or API JSON, RSS/Atom file; repeatable",
        ),
    ],
    episodes: Annotated[
        Path,
        typer.Option(help="Early Warning Project episodes CSV, or a CSV country,start,end[,name]"),
    ],
    report: Annotated[Path, typer.Option(help="Directory for report.html, scores.json and alerts")],
    country: Annotated[
        list[str] | None,
        typer.Option(
            help="ISO alpha-3 of the files' country where they do not say it (a ReliefWeb listing): once "
            "for all files, or once per --from-file in the same order; also limits the scoring to them"
        ),
    ] = None,
    rules: Annotated[Path | None, typer.Option(help="Rules file (default: packaged)")] = None,
    catalogue: Annotated[Path | None, typer.Option(help="Indicator catalogue (default: packaged)")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First day replayed (YYYY-MM-DD)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day replayed (YYYY-MM-DD)")] = None,
    horizon: Annotated[str, typer.Option(help="How long before an episode a warning counts")] = "365d",
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="RULE or RULE=V1,V2,...: recall and false alarms over a grid of its lowest level"),
    ] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bars")] = False,
) -> None:
    """Replay history through the pipelines' transforms and score the alerts against labelled episodes.

    Extra arguments after `--` go to the Beam runner (default Prism).
    """
    from tocsin.durations import parse_duration
    from tocsin.formats.countries import iso3_checked
    from tocsin.pipelines.backtest.episodes import EpisodesError, load_episodes
    from tocsin.pipelines.backtest.run import Backtest, file_countries, run
    from tocsin.pipelines.backtest.sweep import SweepError, parse_sweep
    from tocsin.pipelines.indicators.catalogue import CatalogueError, load_catalogue
    from tocsin.pipelines.rules.config import RulesError, load_rules

    missing = [p for p in from_file if not p.exists()]
    if missing:
        for p in missing:
            typer.echo(f"{p}: no such file or directory", err=True)
        raise typer.Exit(1)
    bad = [c for c in country or [] if iso3_checked(c.upper()) is None]
    if bad:
        typer.echo(f"--country: {bad[0]!r} is not an ISO alpha-3 country code", err=True)
        raise typer.Exit(1)
    try:
        file_countries(list(from_file), [c.upper() for c in country or []])
    except ValueError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    try:
        horizon_s = parse_duration(horizon)
    except ValueError as error:
        typer.echo(f"--horizon: {error}", err=True)
        raise typer.Exit(1) from None
    first, last = _date(start, "--from"), _date(end, "--to")
    if first and last and last < first:
        typer.echo(f"--to {last} is before --from {first}", err=True)
        raise typer.Exit(1)
    try:
        labelled = load_episodes(episodes)
    except EpisodesError as error:
        exit_with_errors(episodes, error.errors)
    try:
        cat = load_catalogue(catalogue)
        ruleset = load_rules(rules, cat)
    except (RulesError, CatalogueError) as error:
        exit_with_errors(rules or catalogue or Path("rules"), error.errors)
    try:
        grids = [parse_sweep(s, ruleset) for s in sweep or []]
    except SweepError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    job = Backtest(
        files=list(from_file),
        episodes=labelled,
        ruleset=ruleset,
        catalogue=cat,
        report_dir=report,
        horizon_days=horizon_s // 86_400,
        countries=[c.upper() for c in country or []],
        start=first,
        end=last,
        sweeps=grids,
        beam_args=list(ctx.args),
        show_progress=not quiet,
    )
    try:
        result = run(job)
    except (ValueError, FileNotFoundError) as error:  # an unreadable input file, a runner not built
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None
    typer.echo(summary(result))
    typer.echo(f"report: {report / 'report.html'}  scores: {report / 'scores.json'}")


def _num(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def summary(result: dict) -> str:
    """What a reader needs at a glance: per rule, then per episode."""
    scores = result["scores"]
    inputs = scores["inputs"]
    lines = [
        f"{inputs['events']:,} records, {inputs['observations']:,} observations, "
        f"{inputs['signals']:,} signals, {inputs['dead_letters']:,} dead letters "
        f"in {inputs['seconds']:.1f} s "
        f"({_num(inputs['events_per_second'], 0)} records/s, peak RSS {inputs['peak_rss_mib']:,.0f} MiB)",
        f"{'rule':40} {'alerts':>6} {'warned':>7} {'lead (median)':>14} {'false alarm-days/cy':>20} "
        f"{'cy precision':>12} {'cy recall':>9}",
    ]
    rows = [("all rules", scores["totals"]["overall"]), *sorted(scores["totals"]["rules"].items())]
    for name, t in rows:
        lead = t["lead_time_days"]["median"]
        lines.append(
            f"{name:40} {t['alerts']:>6} {t['warned']:>3}/{t['episodes']:<3} "
            f"{(_num(lead, 0) + ' d') if lead is not None else 'n/a':>14} "
            f"{_num(t['false_alarm_days_per_country_year']):>20} "
            f"{_num(t['country_year']['precision'], 2):>12} {_num(t['country_year']['recall'], 2):>9}"
        )
    for e in scores["episodes"]:
        if not e["scored"]:
            lines.append(f"  {e['country']} {e['start']} {e['name'][:60]}: not scored (began with the data)")
            continue
        verdict = (
            f"warned {e['lead_time_days']} days before by {e['first_alert_rule']} ({e['first_alert_at']})"
            if e["warned"]
            else (
                f"missed; first alert {-e['lead_time_days']} days after the start"
                if e["lead_time_days"] is not None
                else "missed; no alert"
            )
        )
        lines.append(f"  {e['country']} {e['start']} {e['name'][:60]}: {verdict}")
    return "\n".join(lines)
