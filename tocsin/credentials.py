"""Secrets read from a file or an environment variable, never from a command line, and never written out.

A command line is public: every user of the machine reads it in `ps` (/proc/<pid>/cmdline), and a Beam
job's pipeline options travel to the runner and its workers. So tocsin takes a secret only from a file
(mode 0600, a mounted Kubernetes or Docker secret) or from its environment variable, both of which only
its own user reads.

A `Secret` is the text itself, a str that the Kafka clients take as they would any password, which also
remembers where it was read. Its repr hides it (a client config in a log line or a traceback shows
where the secret came from, not the secret), and it pickles as that place: a Beam DoFn that carries the
client settings ships `file:/run/secrets/kafka` to the runner, not the password, and the worker reads the
same file (or its own environment variable) again when it unpickles the DoFn.
"""

from __future__ import annotations

import os
from pathlib import Path


class SecretError(ValueError):
    """A secret's file or variable cannot be read, or is empty."""


class Secret(str):
    """The text of a secret, and `source`: `file:<path>` or `env:<NAME>`."""

    source: str

    def __new__(cls, value: str, source: str) -> Secret:
        secret = super().__new__(cls, value)
        secret.source = source
        return secret

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    def __reduce__(self):
        return reread, (self.source,)


def hidden(value):
    """`value` with every Secret in it (in dicts, lists and tuples too) replaced by its repr: what a log
    line shows. A JSON renderer writes a str subclass as its text, so a log line must not be given one."""
    if isinstance(value, Secret):
        return repr(value)
    if isinstance(value, dict):
        return {key: hidden(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(hidden(item) for item in value)
    return value


def from_file(path: Path | str) -> Secret:
    """The file's text without its final line break (`echo secret > file` writes one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise SecretError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError:
        raise SecretError(f"{path}: not UTF-8") from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretError(f"{path}: empty")
    return Secret(value, f"file:{path}")


def from_env(name: str) -> Secret:
    value = os.environ.get(name)
    if not value:
        raise SecretError(f"{name} is not set")
    return Secret(value, f"env:{name}")


def reread(source: str) -> Secret:
    """The secret read again from where it came: what unpickling a Secret does on a Beam worker, whose
    message says that a worker needs the same file or variable as the process that started the job."""
    kind, _, where = source.partition(":")
    try:
        return from_file(where) if kind == "file" else from_env(where)
    except SecretError as error:
        raise SecretError(f"{error} (a worker needs the secret where the job's process read it)") from None
