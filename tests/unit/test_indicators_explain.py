"""`tocsin indicators explain`: matches with their reasons and the deaths read, for a text or a file."""

from __future__ import annotations

from typer.testing import CliRunner

from tocsin.cli import app


def invoke(*args):
    return CliRunner().invoke(app, ["indicators", "explain", *args])


def test_a_headline_its_indicators_reasons_and_deaths():
    result = invoke("Fighting kills 37 in Jonglei as militias torch villages")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "Fighting kills 37 in Jonglei as militias torch villages",
        "  rf1.fighting_reported (RF1, weight 0.5): keyword 'Fighting' (en)",
        "  rf2.killings_reported (RF1, RF2, weight 1): keyword 'kills' (en)",
        "  rf7.arms_and_militias (RF7, weight 0.5): keyword 'militias' (en)",
        "  deaths read: 37 (from 'kills 37')",
    ]


def test_the_language_and_source_type_are_the_pipelines():
    french = invoke("Des milliers de déplacés", "--language", "en")
    assert french.stdout.splitlines()[1:] == ["  no indicator"]
    curated = invoke("12 civilians killed", "--source-type", "conflict_data")
    assert "rf2.killings_reported" not in curated.stdout  # text indicators skip curated data


def test_a_file_of_observations_with_a_tally(tmp_path):
    listing = tmp_path / "titles.csv"
    listing.write_text(
        "title,language\nCholera outbreak kills 27,en\nGunmen kill 12 villagers,en\nElection results,en\n",
        encoding="utf-8",
    )
    result = invoke("--file", str(listing))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-3:] == [
        "3 observations, 2 matched an indicator, 1 state deaths",
        "       1 rf2.killings_reported",
        "       1 rf8.elections",
    ]
    assert "Cholera outbreak kills 27\n  no indicator" in result.stdout  # disease is not a killing


def test_bad_input_is_one_line_and_exit_1(tmp_path):
    assert (invoke().exit_code, invoke("x", "--file", "y").exit_code) == (1, 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("id,date\n1,2\n", encoding="utf-8")
    result = invoke("--file", str(bad))
    assert result.exit_code == 1
    assert result.stderr.strip() == "bad.csv: a CSV needs a title or text column (the header has: id, date)"
