"""Benchmark: `tocsin backtest` replays, records/s and peak memory, one after the other in one run.

Each case is the command a user runs (the packaged catalogue and rules, Prism), timed end to end by the
back-test itself (its run.json: records read / wall seconds, peak RSS of the Python process, in which the
SDK worker runs, and of the runner once it exits). The cases read the shared real data beside the
checkout (ReliefWeb listings of South Sudan and the CAR, the UCDP GED sample, the GDELT excerpt), or the
committed excerpts in sample_data/ when it is absent.

    python bench/backtest_bench.py [--shared-data DIR]

Writes bench/out/backtest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"


def cases(data: Path) -> list[tuple[str, list[str]]]:
    ewp = data / "onsets" / "ewp2025" / "ewp_mk_events_2025.csv"
    listings = data / "news" / "reliefweb_reports_csv"
    if ewp.exists() and listings.exists():
        return [
            (
                "reliefweb listings SSD + CAF (43,041 rows, 2004-2014 scored)",
                ["--from-file", str(listings / "South_Sudan.csv"), "--country", "SSD",
                 "--from-file", str(listings / "Central_African_Republic.csv"), "--country", "CAF",
                 "--episodes", str(ewp), "--from", "2004-01-01"],
            ),
            ("UCDP GED sample (1,000 events, 1989-2022)",
             ["--from-file", str(data / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"), "--episodes", str(ewp)]),
            ("GDELT 2.0 excerpt (9,354 events, 3 days)",
             ["--from-file", str(data / "gdelt2" / "export_15min"), "--episodes", str(ewp)]),
        ]  # fmt: skip
    episodes = ROOT / "tests" / "fixtures" / "episodes" / "ewp_mk_events_excerpt.csv"
    sample = ROOT / "sample_data"
    return [
        (
            "committed samples (UCDP 300, GDELT 931)",
            ["--from-file", str(sample / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv"),
             "--from-file", str(sample / "gdelt2"), "--episodes", str(episodes)],
        )
    ]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shared-data", type=Path, default=ROOT.parent / "shared" / "data")
    args = p.parse_args()
    results = []
    for name, argv in cases(args.shared_data):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report"
            command = [sys.executable, "-m", "tocsin.cli", "backtest", *argv, "--report", str(report)]
            print(f"== {name}", flush=True)
            done = subprocess.run(command, cwd=ROOT, text=True, capture_output=True)
            if done.returncode:
                sys.exit(f"{name}: backtest failed:\n{done.stderr[-2000:]}")
            run = json.loads((report / "run.json").read_text())
            scores = json.loads((report / "scores.json").read_text())
        inputs = scores["inputs"]
        row = {
            "case": name,
            "records": inputs["events"],
            "observations": inputs["observations"],
            "signals": inputs["signals"],
            **run,
        }
        results.append(row)
        runner = run["peak_rss_runner_mib"]
        print(
            f"   {row['records']:,} records in {run['seconds']:.1f} s: {run['events_per_second']:,.0f} "
            f"records/s, {row['signals']:,} signals, peak RSS {run['peak_rss_mib']:,.0f} MiB (runner "
            f"{'not measured' if runner is None else f'{runner:,.0f} MiB'}); steps {run['seconds_by_step']}",
            flush=True,
        )
    OUT.mkdir(parents=True, exist_ok=True)
    out = {"machine": {"cpus": _cpus(), "python": platform.python_version()}, "results": results}
    (OUT / "backtest.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {OUT / 'backtest.json'}")


def _cpus() -> int:
    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
