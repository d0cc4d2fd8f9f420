"""How every tocsin command reports a file it refuses: each error on its own line, then exit status 1."""

from __future__ import annotations

from pathlib import Path

import typer


def exit_with_errors(path: Path, errors: list[str]) -> None:
    typer.echo(f"{path}: {len(errors)} error(s)", err=True)
    for line in errors:
        typer.echo(f"  {line}", err=True)
    raise typer.Exit(1)
