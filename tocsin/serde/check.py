"""`tocsin schemas check`: compare the schemas in a folder with a baseline (a git ref or a folder)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fastavro.schema import SchemaParseException

from tocsin.serde.avro import Schema
from tocsin.serde.compat import compatibility_problems


class BaselineError(ValueError):
    """No baseline to compare with (a folder or git ref that is not there): one line saying which."""


def baseline(against: str, schema_dir: Path) -> dict[str, dict]:
    """The baseline `--against` names: a folder of `.avsc` files (no git needed, as from an installed
    wheel), else a git ref of the repository holding `schema_dir`."""
    if Path(against).is_dir():
        return baseline_from_dir(Path(against))
    return baseline_from_git(against, schema_dir)


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BaselineError("git is not installed: give --against a folder of .avsc files") from None


def baseline_from_git(ref: str, schema_dir: Path) -> dict[str, dict]:
    """The `.avsc` files of `schema_dir` as they were at git `ref` (empty if the folder did not exist
    then). BaselineError if `schema_dir` is in no git work tree, or `ref` names no commit."""
    top = _git(["rev-parse", "--show-toplevel"], schema_dir)
    if top.returncode != 0:
        raise BaselineError(
            f"--against {ref}: no such folder, and {schema_dir} is not in a git work tree "
            "(give --against a folder of .avsc files)"
        )
    root = top.stdout.strip()
    if _git(["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], Path(root)).returncode != 0:
        raise BaselineError(f"--against {ref}: neither a folder nor a git ref of {root}")
    rel = schema_dir.resolve().relative_to(Path(root).resolve()).as_posix()
    listing = _git(["ls-tree", "--name-only", f"{ref}:{rel}"], Path(root))
    if listing.returncode != 0:
        if "Not a valid object name" in listing.stderr or "does not exist" in listing.stderr:
            return {}  # the ref is there, the folder was not yet: every schema is new
        raise BaselineError(f"git ls-tree {ref}:{rel} failed: {listing.stderr.strip()}")
    out = {}
    for name in listing.stdout.split():
        if name.endswith(".avsc"):
            shown = _git(["show", f"{ref}:{rel}/{name}"], Path(root))
            if shown.returncode != 0:
                raise BaselineError(f"git show {ref}:{rel}/{name} failed: {shown.stderr.strip()}")
            out[name] = _json(shown.stdout, f"{ref}:{rel}/{name}")
    return out


def baseline_from_dir(directory: Path) -> dict[str, dict]:
    directory = Path(directory)
    if not directory.is_dir():
        raise BaselineError(f"--against {directory}: no such folder")
    paths = sorted(directory.glob("*.avsc"))
    if not paths:  # comparing with nothing passes whatever changed: surely the wrong folder
        raise BaselineError(f"--against {directory}: no .avsc files in the folder")
    return {p.name: _json(p.read_text(), str(p)) for p in paths}


def _json(text: str, where: str) -> dict:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise BaselineError(f"{where}: not valid JSON: {error}") from None


def invalid_schemas(directory: Path) -> list[str]:
    """Each `.avsc` file of `directory` that fastavro cannot parse, with the reason."""
    problems = []
    for path in sorted(Path(directory).glob("*.avsc")):
        try:
            Schema.from_file(path)
        except json.JSONDecodeError:
            continue  # check_schemas reports it
        except (SchemaParseException, ValueError, KeyError, TypeError) as error:
            problems.append(f"{path.name}: invalid schema: {error}")
    return problems


def check_schemas(current_dir: Path, baseline: dict[str, dict], mode: str = "full") -> list[str]:
    """Every problem with moving from `baseline` to the schemas in `current_dir`."""
    problems: list[str] = []
    current = {}
    for path in sorted(Path(current_dir).glob("*.avsc")):
        try:
            current[path.name] = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            problems.append(f"{path.name}: not valid JSON: {exc}")
    for name in sorted(baseline):
        if name not in current:
            if name not in {p for p in problems}:
                problems.append(f"{name}: removed; topics may still hold records written with it")
            continue
        old, new = baseline[name], current[name]
        if old.get("namespace") != new.get("namespace"):
            problems.append(
                f"{name}: namespace changed from {old.get('namespace')} to {new.get('namespace')}"
            )
        problems += [f"{name}: {p}" for p in compatibility_problems(old, new, mode)]
    return problems
