"""How every tocsin command reports an expected failure: one line on stderr, exit non-zero, no traceback.

A file the command refuses as a whole is `<file>: N error(s)`, then each error on its own line (as the
config loaders list them); any other mistake an operator can make (a missing file, a broker or router
that does not answer, a bad flag value) is one line, `error: <what>`. Commands catch the exception types
they expect at their edge and turn them into that line here; anything else is a bug and keeps its
traceback. SystemExit rather than typer.Exit, so that the Beam jobs' argparse programs use it as well.
"""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from kafka.errors import KafkaTimeoutError

from tocsin.config import KafkaSettings
from tocsin.durations import format_duration

# What kafka-python (3.x: NoBrokersAvailable is gone) raises when no broker answered within the client's
# bootstrap_timeout_ms: KafkaTimeoutError("Unable to bootstrap from [...]").
KAFKA_UNREACHABLE = (KafkaTimeoutError,)


def fail(line: str, code: int = 1) -> NoReturn:
    typer.echo(line, err=True)
    raise SystemExit(code)


def exit_with_errors(path: Path, errors: list[str]) -> NoReturn:
    typer.echo(f"{path}: {len(errors)} error(s)", err=True)
    for line in errors:
        typer.echo(f"  {line}", err=True)
    raise SystemExit(1)


def os_error_line(error: OSError) -> str:
    """'error: nope.csv: No such file or directory' (the file as given), or the error's own words."""
    if error.filename is not None and error.strerror:
        return f"error: {error.filename}: {error.strerror}"
    return f"error: {error.strerror or error}"


def kafka_unreachable_line(servers: str, error: Exception, timeout_s: int | None = None) -> str:
    if "Unable to bootstrap" in str(error):
        within = f" within {format_duration(timeout_s)}" if timeout_s else ""
        return f"error: cannot reach Kafka at {servers}: no broker answered{within}"
    return f"error: Kafka at {servers}: {str(error).removeprefix('KafkaTimeoutError: ')}"


def url_error_line(url: str, error: urllib.error.URLError, what: str = "") -> str:
    """'error: cannot reach the router at http://127.0.0.1:1: Connection refused'."""
    reason = getattr(error, "reason", error)
    if isinstance(reason, OSError) and reason.strerror:
        reason = reason.strerror
    return f"error: cannot reach {what + ' at ' if what else ''}{url}: {reason}"


@contextmanager
def operator_errors(kafka: KafkaSettings | None = None, url: str | None = None) -> Iterator[None]:
    """Around a command's body: an unreachable broker (`kafka`, the command's KafkaSettings) or router
    (`url`), or a file or socket the system refuses (OSError), becomes its one line and exit status 1."""
    try:
        yield
    except KAFKA_UNREACHABLE as error:
        if kafka is None:
            raise
        fail(kafka_unreachable_line(kafka.bootstrap_servers, error, kafka.bootstrap_timeout))
    except urllib.error.URLError as error:  # before OSError, of which it is one
        if url is None:
            raise
        fail(url_error_line(url, error))
    except OSError as error:
        fail(os_error_line(error))
