"""Schema compatibility under the Avro resolution rules, and `tocsin schemas check`."""

from __future__ import annotations

import copy
import json
import shutil

from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.compat import compatibility_problems, reader_problems

ALERT = json.loads((SCHEMA_DIR / "alert.avsc").read_text())


def changed(mutate) -> dict:
    new = copy.deepcopy(ALERT)
    mutate(new)
    return new


def field(schema, name):
    return next(f for f in schema["fields"] if f["name"] == name)


def test_identical_schemas_are_compatible():
    assert compatibility_problems(ALERT, ALERT) == []


def test_added_field_with_default_is_fully_compatible():
    new = changed(lambda s: s["fields"].append({"name": "note", "type": ["null", "string"], "default": None}))
    assert compatibility_problems(ALERT, new) == []


def test_added_field_without_default_breaks_backward():
    new = changed(lambda s: s["fields"].append({"name": "note", "type": "string"}))
    assert compatibility_problems(ALERT, new) == ["backward: Alert.note: field added without a default"]


def test_removed_field_without_default_breaks_forward():
    new = changed(lambda s: s["fields"].remove(field(s, "summary")))
    assert compatibility_problems(ALERT, new) == ["forward: Alert.summary: field added without a default"]


def test_type_change_and_promotion():
    widened = changed(lambda s: field(s, "sequence").update(type="double"))
    assert compatibility_problems(ALERT, widened, "backward") == []
    assert compatibility_problems(ALERT, widened) == [
        "forward: Alert.sequence: double cannot be read as long"
    ]


def test_enum_symbol_added_without_default_breaks_forward():
    new = changed(lambda s: field(s, "status")["type"]["symbols"].append("SILENCED"))
    assert compatibility_problems(ALERT, new) == [
        "forward: Alert.status: enum symbols SILENCED unknown to the reader, which has no default"
    ]
    # Severity has a default symbol, so old readers can read a new level.
    assert (
        compatibility_problems(
            ALERT, changed(lambda s: field(s, "severity")["type"]["symbols"].append("EMERGENCY"))
        )
        == []
    )


def test_nested_paths_are_reported():
    new = changed(lambda s: field(s, "values")["type"]["items"]["fields"][1].update(type="string"))
    assert reader_problems(ALERT, new) == ["Alert.values[].value: double cannot be read as string"]


def test_union_narrowing():
    new = changed(lambda s: field(s, "region").update(type="string", default=""))
    assert reader_problems(ALERT, new) == ["Alert.region: null cannot be read as string"]
    assert reader_problems(new, ALERT) == []


def test_schemas_check_cli(tmp_path):
    baseline = tmp_path / "baseline"
    current = tmp_path / "current"
    shutil.copytree(SCHEMA_DIR, baseline, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copytree(baseline, current)
    runner = CliRunner()

    ok = runner.invoke(app, ["schemas", "check", "--against", str(baseline), "--schema-dir", str(current)])
    assert ok.exit_code == 0, ok.output
    assert "11 schemas compatible (full)" in ok.output

    broken = json.loads((current / "alert.avsc").read_text())
    broken["fields"].append({"name": "note", "type": "string", "doc": "x"})
    (current / "alert.avsc").write_text(json.dumps(broken))
    (current / "response.avsc").unlink()
    bad = runner.invoke(app, ["schemas", "check", "--against", str(baseline), "--schema-dir", str(current)])
    assert bad.exit_code == 1
    assert "alert.avsc: backward: Alert.note: field added without a default" in bad.output
    assert "response.avsc: removed; topics may still hold records written with it" in bad.output


def test_schemas_check_against_git_head_passes_on_the_committed_schemas():
    result = CliRunner().invoke(app, ["schemas", "check"])
    assert result.exit_code == 0, result.output
