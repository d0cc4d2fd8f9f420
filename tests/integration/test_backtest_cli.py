"""`tocsin backtest` as a user runs it: deterministic scores, a report, and one-line refusals of bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import FIXTURES, ROOT

pytestmark = [pytest.mark.runner]

UCDP = ROOT / "sample_data" / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv"
GDELT = ROOT / "sample_data" / "gdelt2"
LISTING = FIXTURES / "reliefweb" / "South_Sudan_excerpt.csv"
EWP = FIXTURES / "episodes" / "ewp_mk_events_excerpt.csv"


def backtest(*args: str, report=None):
    argv = [sys.executable, "-m", "tocsin.cli", "backtest", *args, "--quiet"]
    if report is not None:
        argv += ["--report", str(report)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_same_input_gives_the_same_scores_and_a_report(tmp_path):
    args = ("--from-file", str(UCDP), "--from-file", str(GDELT), "--from-file", str(LISTING),
            "--episodes", str(EWP), "--sweep", "armed-conflict-deaths=5,10")  # fmt: skip
    first, second = backtest(*args, report=tmp_path / "a"), backtest(*args, report=tmp_path / "b")
    assert first.returncode == 0, first.stderr[-2000:]
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = (tmp_path / "a" / "scores.json").read_bytes(), (tmp_path / "b" / "scores.json").read_bytes()
    assert a == b
    scores = json.loads(a)
    assert scores["inputs"]["events"] == 300 + 931 + 29
    assert scores["inputs"]["files"] == [UCDP.name, GDELT.name, LISTING.name]
    assert [p["value"] for p in scores["sweeps"][0]["points"]] == [5.0, 10.0]
    assert set(scores["totals"]["rules"]) >= {"armed-conflict-deaths", "civilians-killed", "reported-deaths"}
    assert (tmp_path / "a" / "report.html").stat().st_size > 10_000
    assert json.loads((tmp_path / "a" / "run.json").read_text())["events_per_second"] > 0
    # The summary a reader sees first: per rule, then per episode.
    lines = first.stdout.splitlines()
    assert lines[0].startswith("1,260 records, ") and " records/s, peak RSS " in lines[0]
    assert lines[1].split() == ["rule", "alerts", "warned", "lead", "(median)", "false", "alarm-days/cy",
                                "cy", "precision", "cy", "recall"]  # fmt: skip
    assert lines[2].startswith("all rules")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from-file", "nowhere.csv", "--episodes", str(EWP)), "nowhere.csv: no such file or directory"),
        (
            ("--from-file", str(UCDP), "--country", "XYZ", "--episodes", str(EWP)),
            "--country: 'XYZ' is not an ISO alpha-3 country code",
        ),
        (
            ("--from-file", str(UCDP), "--from-file", str(GDELT), "--country", "SSD", "--country", "CAF",
             "--country", "SDN", "--episodes", str(EWP)),
            "--country: 3 countries for 2 files: give one for all the files, or one per --from-file, in the "
            "same order",
        ),
        (("--from-file", str(UCDP), "--episodes", str(UCDP)), f"{UCDP}: 1 error(s)"),
        (
            ("--from-file", str(UCDP), "--episodes", str(EWP), "--sweep", "nope"),
            "--sweep nope: no rule 'nope' (the rules are: ",
        ),
        (("--from-file", str(UCDP), "--episodes", str(EWP), "--from", "2020-13-01"),
         "--from: '2020-13-01' is not a date (YYYY-MM-DD)"),
        (("--from-file", str(UCDP), "--episodes", str(EWP), "--horizon", "1y"),
         "--horizon: duration '1y' is "),
    ],
)  # fmt: skip
def test_bad_input_is_refused_in_one_line(tmp_path, args, message):
    done = backtest(*args, report=tmp_path / "r")
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith(message), done.stderr
    assert "Traceback" not in done.stderr


def test_a_ucdp_file_without_a_required_column_is_named_in_the_error(tmp_path):
    with UCDP.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))[:3]
    cut = tmp_path / "ged_old.csv"
    with cut.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, [c for c in rows[0] if c != "best"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    done = backtest("--from-file", str(cut), "--episodes", str(EWP), report=tmp_path / "r")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("ged_old.csv: missing required column(s): best (the header has: ")
