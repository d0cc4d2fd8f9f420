"""Benchmark: batch replays at scale, on real events repeated under new ids.

Inputs, built from the shared real data (skipped with a note when it is absent):
- GDELT: the 32 export files of the GDELT 2.0 excerpt (9,354 events over 3 days), copied under new
  GLOBALEVENTIDs with SQLDATE moved on by 3 days a copy, up to `--gdelt-events` (default 1,000,000:
  107 copies over ~11 months), written as export files;
- UCDP GED: the 1,000-event sample copied 16 times under new ids, every copy's dates moved into
  2018-2021 (its day of the year kept), ~16,000 events over four years, as the issue's replay of a
  country at war.
Each input runs through the commands a user runs, one after the other: `tocsin pipeline indicators
--batch --from-file X --output-file Y` (the default windows, 1d/1h and 7d/1d, per country and per
region) and `tocsin backtest` (the windows and indicators the packaged rules read, then the alerts and
their scores). Events/s = input events / wall seconds of the whole command (file parsing, Beam start-up
and all); peak RSS = the command's process tree (Python, in which the SDK worker runs, and Prism),
sampled every 0.2 s. `--tocsin DIR` also runs the cases with another checkout (the one before a change)
in the same run, for before/after figures; its `tocsin/` gets links to its top-level packages, so that
`PYTHONPATH=DIR` imports that checkout's code, not this one's.

    python bench/indicator_batch_bench.py [--gdelt-events 1000000] [--tocsin OLD_CHECKOUT ...]

Writes bench/out/indicator_batch.json (--name to change).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
console = Console(stderr=True)


def gdelt_copies(source: Path, out: Path, events: int) -> int:
    """Export files with the source's events repeated under new ids, 3 days later each copy."""
    from tocsin.formats.gdelt import export_files, read_export

    files = [(p.name, read_export(p).splitlines()) for p in export_files(source)]
    per_copy = sum(len(lines) for _, lines in files)
    written, copy = 0, 0
    out.mkdir(parents=True, exist_ok=True)
    while written < events:
        shift = dt.timedelta(days=3 * copy)
        for name, lines in files:
            stamp = dt.datetime.strptime(name[:14], "%Y%m%d%H%M%S") + shift
            rows = []
            for line in lines:
                if written >= events:
                    break
                cols = line.split("\t")
                cols[0] = str(int(cols[0]) + copy * 10_000_000_000)
                day = dt.datetime.strptime(cols[1], "%Y%m%d") + shift
                cols[1], cols[2], cols[3] = day.strftime("%Y%m%d"), day.strftime("%Y%m"), day.strftime("%Y")
                rows.append("\t".join(cols))
                written += 1
            if rows:
                (out / f"{stamp:%Y%m%d%H%M%S}.export.CSV").write_text("\n".join(rows) + "\n")
        copy += 1
        console.print(f"gdelt copies: {written:,} events of {events:,}", end="\r")
    console.print()
    return per_copy


def ucdp_copies(source: Path, out: Path, copies: int = 16) -> int:
    """The UCDP sample `copies` times under new ids, its dates moved into 2018-2021."""
    with source.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows, fields = list(reader), reader.fieldnames
    n = 0
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for copy in range(copies):
            for row in rows:
                start = dt.date.fromisoformat(row["date_start"][:10])
                end = dt.date.fromisoformat(row["date_end"][:10])
                year = 2018 + (copy + n) % 4
                new_start = _same_day(start, year)
                new_end = new_start + (end - start)
                writer.writerow(
                    row
                    | {
                        "id": str(int(row["id"]) + (copy + 1) * 10_000_000),
                        "year": str(new_start.year),
                        "date_start": f"{new_start} 00:00:00.000",
                        "date_end": f"{new_end} 00:00:00.000",
                    }
                )
                n += 1
    return n


def _same_day(day: dt.date, year: int) -> dt.date:
    try:
        return day.replace(year=year)
    except ValueError:  # 29 February
        return day.replace(year=year, day=28)


def _commit(checkout: Path) -> str:
    rev = subprocess.run(
        ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return f"checkout at {rev.stdout.strip() or '?'}"


def linked(checkout: Path) -> Path:
    """A checkout importable by PYTHONPATH: the packages pyproject maps under `tocsin` linked there."""
    for name in ("pipelines", "connectors", "router", "schemas", "sample_data"):
        link = checkout / "tocsin" / name
        if not link.exists():
            link.symlink_to(Path("..") / name)
    return checkout


def timed(checkout: Path, args: list[str], log: Path) -> dict:
    """Run `tocsin ARGS` with `checkout`'s code; wall seconds and the process tree's peak RSS."""
    from measure import SystemProcess  # bench/peers: the same /proc sampling as the peers bench

    env = {**os.environ, "PYTHONPATH": str(checkout)}
    entry = "import sys; from tocsin.cli import main; sys.argv[0] = 'tocsin'; main()"
    cmd = [sys.executable, "-c", entry, *args]
    started = time.perf_counter()
    with SystemProcess(cmd, log, cwd=checkout, env=env) as proc:
        while proc.running():
            proc.tree.sample()
            time.sleep(0.2)
        code = proc.proc.returncode
    wall = time.perf_counter() - started
    figures = proc.tree.figures()
    out = {"wall_s": round(wall, 1), "peak_rss_mb": round(figures["peak_rss_mb"])}
    out["peak_rss_mb_by_process"] = figures["peak_rss_mb_by_process"]
    if code != 0:
        out["error"] = log.read_text(errors="replace").strip().splitlines()[-5:]
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--gdelt-events", type=int, default=1_000_000)
    p.add_argument("--tocsin", type=Path, action="append", default=[], help="Another checkout to run too")
    p.add_argument("--cases", default="ucdp,gdelt", help="Inputs: ucdp, gdelt")
    p.add_argument("--commands", default="indicators,backtest", help="indicators, backtest")
    p.add_argument("--name", default="indicator_batch", help="Output: bench/out/NAME.json")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT / "bench" / "peers"))
    data = args.shared_data
    ewp = data / "onsets" / "ewp2025" / "ewp_mk_events_2025.csv"
    if not ewp.exists():
        sys.exit(f"error: the shared data is not at {data} (give --shared-data): nothing to replay")
    tmp = Path(tempfile.mkdtemp(prefix="tocsin-batch-bench-"))
    inputs = {}
    if "ucdp" in args.cases:
        ucdp = tmp / "ucdp_16k.csv"
        n = ucdp_copies(data / "ucdp_ged" / "ucdpged_23_1_sample1000.csv", ucdp)
        inputs["ucdp"] = (f"UCDP GED sample x16 ({n:,} events, 2018-2021)", ucdp, n)
    if "gdelt" in args.cases:
        gdelt = tmp / "gdelt"
        gdelt_copies(data / "gdelt2" / "export_15min", gdelt, args.gdelt_events)
        title = f"GDELT 2.0 excerpt repeated ({args.gdelt_events:,} events)"
        inputs["gdelt"] = (title, gdelt, args.gdelt_events)
    # Named by their commit, not their path: the JSON says what ran, not where.
    checkouts = [("this checkout", ROOT)] + [(_commit(c), linked(c.resolve())) for c in args.tocsin]
    results = []
    for case, (title, path, n) in inputs.items():
        for command in args.commands.split(","):
            for name, checkout in checkouts:
                work = tmp / f"{case}-{command}-{len(results)}"
                work.mkdir()
                if command == "indicators":
                    cmd = ["pipeline", "indicators", "--batch", "--from-file", str(path)]
                    cmd += ["--output-file", str(work / "signals.jsonl")]
                else:
                    cmd = ["backtest", "--from-file", str(path), "--episodes", str(ewp)]
                    cmd += ["--report", str(work), "--quiet"]
                console.print(f"[bold]{title}[/]: {command} with {name} ...")
                out = timed(checkout, cmd, work / "command.log")
                out |= {"case": case, "title": title, "command": command, "events": n, "checkout": name}
                if "error" not in out:
                    out["events_per_s"] = round(n / out["wall_s"])
                    if command == "indicators":
                        out["signal_panes"] = sum(1 for _ in (work / "signals.jsonl").open())
                    else:
                        run = json.loads((work / "run.json").read_text())
                        out["backtest_run"] = run
                console.print(json.dumps({k: v for k, v in out.items() if k != "backtest_run"}))
                results.append(out)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {
        "results": results,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "note": "events/s = input events / wall seconds of the whole command (parsing, Beam start-up, all)",
    }
    (OUT / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"wrote {OUT / f'{args.name}.json'}")


if __name__ == "__main__":
    main()
