"""`tocsin schemas check`: compare the schemas in a folder with a baseline (a git ref or a folder)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tocsin.serde.compat import compatibility_problems


def baseline_from_git(ref: str, schema_dir: Path) -> dict[str, dict]:
    """The `.avsc` files of `schema_dir` as they were at git `ref` (empty if the folder did not exist)."""
    top = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=schema_dir, capture_output=True, text=True, check=True
    ).stdout.strip()
    rel = schema_dir.resolve().relative_to(Path(top).resolve()).as_posix()
    listing = subprocess.run(
        ["git", "ls-tree", "--name-only", f"{ref}:{rel}"], cwd=top, capture_output=True, text=True
    )
    if listing.returncode != 0:
        if "Not a valid object name" in listing.stderr or "does not exist" in listing.stderr:
            return {}
        raise RuntimeError(f"git ls-tree {ref}:{rel} failed: {listing.stderr.strip()}")
    out = {}
    for name in listing.stdout.split():
        if name.endswith(".avsc"):
            text = subprocess.run(
                ["git", "show", f"{ref}:{rel}/{name}"], cwd=top, capture_output=True, text=True, check=True
            ).stdout
            out[name] = json.loads(text)
    return out


def baseline_from_dir(directory: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(directory).glob("*.avsc"))}


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
