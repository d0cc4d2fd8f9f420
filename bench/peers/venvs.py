"""One virtual environment per peer, created from its pinned requirements file and reused afterwards.

The peers never share tocsin's venv: their dependencies (confluent-kafka, pyarrow, Rust engines...)
must not change what tocsin runs with, nor each other. A venv is rebuilt only when its requirements
file changed since it was installed (the file's hash is kept in the venv as a stamp).

    python bench/peers/venvs.py [quix bytewax ...]   # install (or check) them without running the bench
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements"
VENVS = HERE / ".venvs"
# The peers are benchmarked on the same interpreter minor version as tocsin (pyproject: Python 3.11).
BASE_PYTHON = os.environ.get("PEERS_PYTHON", "python3.11")


def python_of(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def _stamp(name: str) -> str:
    return hashlib.sha256((REQUIREMENTS / f"{name}.txt").read_bytes()).hexdigest()


def is_current(name: str) -> bool:
    stamp = VENVS / name / ".installed"
    return python_of(name).exists() and stamp.exists() and stamp.read_text().strip() == _stamp(name)


def ensure(name: str, log=print) -> Path:
    """The venv's python, after creating the venv and installing its requirements if needed."""
    if is_current(name):
        return python_of(name)
    target = VENVS / name
    if target.exists():
        shutil.rmtree(target)  # a half-installed or outdated venv: start again rather than patch it
    log(f"creating venv {target.relative_to(HERE.parents[1])} ({BASE_PYTHON})")
    subprocess.run([BASE_PYTHON, "-m", "venv", str(target)], check=True)
    pip = [str(python_of(name)), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "install", "--quiet", "--upgrade", "pip"], check=True)
    log(f"installing {REQUIREMENTS.name}/{name}.txt into it (once; later runs reuse it)")
    subprocess.run([*pip, "install", "--quiet", "-r", str(REQUIREMENTS / f"{name}.txt")], check=True)
    (target / ".installed").write_text(_stamp(name) + "\n")
    return python_of(name)


def installed_versions(python: Path, packages: list[str]) -> dict[str, str | None]:
    """Versions as that interpreter's environment reports them (what really ran, not what was asked)."""
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))\n"
    )
    done = subprocess.run([str(python), "-c", code, *packages], capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


if __name__ == "__main__":
    names = sys.argv[1:] or sorted(p.stem for p in REQUIREMENTS.glob("*.txt"))
    for n in names:
        print(n, ensure(n))
