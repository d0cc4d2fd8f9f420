"""The architecture contracts (pyproject.toml [tool.importlinter]) hold, and they do catch a breach."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import lint_architecture  # noqa: E402 (a script beside the repository's code, not a package)

pytestmark = pytest.mark.skipif(
    not Path(sys.executable).with_name("lint-imports").exists(), reason="import-linter is not installed"
)


def test_the_repository_keeps_its_contracts(tmp_path):
    result = lint_architecture.lint(lint_architecture.stage(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        (
            "router/matchers.py",
            "tocsin.pipelines.windowspec",
            "Stages over the core, the CLI over the stages",
        ),
        ("tocsin/durations.py", "tocsin.router.matchers", "Stages over the core, the CLI over the stages"),
        ("pipelines/io/encode.py", "tocsin.pipelines.rules.config", "Inside the pipelines"),
        ("tocsin/timestamps.py", "tocsin.formats.ucdp", "No import cycles"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(tmp_path, module, forbidden, contract):
    staged = lint_architecture.stage(tmp_path)
    target = staged / module.removeprefix("tocsin/")
    target.write_text(target.read_text() + f"\nimport {forbidden}  # the breach under test\n")
    result = lint_architecture.lint(staged)
    assert result.returncode == 1
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken and Path(module).stem in broken, result.stdout
