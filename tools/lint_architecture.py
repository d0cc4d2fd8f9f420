"""Check the architecture contracts of pyproject.toml ([tool.importlinter]) with import-linter.

The repository keeps its stages at the top level (connectors/, pipelines/, router/) and installs them as
sub-packages of `tocsin`; import-linter reads a package from one folder. So the sources are laid out as
installed (a copy of the .py files under a temporary `tocsin/`) and linted there, in a fresh process
that finds that copy first. Exit status: lint-imports'.

    python tools/lint_architecture.py            # what `make lint` runs
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where each installed sub-package lives in the repository (pyproject.toml's package-dir).
LAYOUT = {
    "": "tocsin",
    "connectors": "connectors",
    "pipelines": "pipelines",
    "router": "router",
    "schemas": "schemas",
    "sample_data": "sample_data",
}


def stage(dest: Path, root: Path = ROOT) -> Path:
    """The Python sources of `root` under `dest/tocsin`, as they are installed. Returns that folder."""
    package = dest / "tocsin"
    for inside, folder in LAYOUT.items():
        target = package / inside if inside else package
        shutil.copytree(
            root / folder,
            target,
            dirs_exist_ok=True,
            ignore=lambda _d, names: [n for n in names if n == "__pycache__"],
        )
    return package


def lint(staged: Path, config: Path = ROOT / "pyproject.toml") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(staged.parent)}
    linter = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(linter), "--no-cache", str(config)], env=env, cwd=staged.parent, capture_output=True, text=True
    )


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tocsin-lint-") as tmp:
        result = lint(stage(Path(tmp)))
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
