"""The process's wire format: how the records it writes are framed, and which registry resolves ids.

Set once by each command from its flags (`configure`), else read from TOCSIN_SERIALIZATION and
TOCSIN_SCHEMA_REGISTRY_URL on first use, so every writer of a process (a DoFn, the router's publishers)
frames alike without being handed the setting. A Beam DoFn carries the settings it was built with
(tocsin.pipelines.io.encode), since a remote runner's workers do not share the launcher's process.
"""

from __future__ import annotations

from tocsin.config import SerializationSettings

_current: SerializationSettings | None = None


def configure(settings: SerializationSettings) -> SerializationSettings:
    global _current
    _current = settings
    return settings


def current() -> SerializationSettings:
    global _current
    if _current is None:
        _current = SerializationSettings()
    return _current
