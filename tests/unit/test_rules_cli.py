"""`tocsin rules check` and `tocsin rules test` on real recorded signals."""

from __future__ import annotations

import csv
import datetime as dt
import re
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import DATA
from tocsin.cli import app
from tocsin.pipelines.rules.config import packaged_rules_path

SIGNALS = Path(__file__).parents[1] / "fixtures" / "signals" / "ucdp_sample_7d_AGO_NGA_SDN.jsonl"
UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"


def day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text[:10]).replace(tzinfo=dt.UTC)


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_check_lists_the_rules_of_a_valid_file():
    result = invoke("rules", "check", str(packaged_rules_path()))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "14 rules valid"
    assert re.search(r"^armed-conflict-deaths +threshold +7d/1d +[0-9a-f]{12}$", result.output, re.M)


def test_check_exits_non_zero_with_every_error(tmp_path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        "version: 1\nrules:\n  - id: x\n    kind: threshold\n    indicator: rf1.nope\n"
        "    window: 1d\n    levels: {watch: 1}\n    colour: red\n"
    )
    result = invoke("rules", "check", str(bad))
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{bad}: 3 error(s)",
        "  rules.0.description: Field required",
        "  rules.0.colour: Extra inputs are not permitted",
        "  rules.0.indicator: indicator 'rf1.nope' is not in the catalogue",
    ]


def test_dry_run_over_recorded_signals_says_what_fires_and_why_from_the_source_records():
    result = invoke("rules", "test", str(packaged_rules_path()), "--signals", str(SIGNALS))
    assert result.exit_code == 0, result.output
    # 7 alerts: the two escalation rules do not fire on a sample this sparse (their baseline is known
    # only from a signal within the rule's 14 weeks of history; the sample's years apart are not one).
    assert result.stdout.splitlines()[-1] == "492 signals, 14 alert events, 7 alerts, 0 still firing"

    # Nigeria, the week ending 2004-05-19: over 100 deaths, so WARNING. Check it against the CSV itself.
    block = result.stdout.split("FIRING   WARNING  armed-conflict-deaths:NGA:2004-05-19T00:00Z")[1]
    block = block.split("\nFIRING")[0].split("\nRESOLVED")[0].split("\nUPDATED")[0]
    deaths = int(re.search(r"rf1.armed_conflict fatalities: (\d+) >= 100", block)[1])
    evidence = re.findall(r"evidence ucdp-ged:(\d+)", block)
    end = dt.datetime(2004, 5, 19, tzinfo=dt.UTC)
    with UCDP.open(encoding="utf-8", newline="") as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    in_window = [
        r for r in rows.values()
        if r["type_of_violence"] in ("1", "2")  # state-based and non-state: the catalogue's armed conflict
        and end - dt.timedelta(days=7) <= day(r["date_start"]) < end
        and r["country"] == "Nigeria"
    ]  # fmt: skip
    assert evidence and set(evidence) <= {r["id"] for r in in_window}
    assert deaths == sum(int(r["best"]) for r in in_window) >= 100
    assert "labels: alertname=armed-conflict-deaths, au=true, country=NGA, ecowas=true" in block
