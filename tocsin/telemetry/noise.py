"""Library log lines that say nothing to an operator, dropped before any library is imported.

Beam logs "apitools not found, and bigquery client libraries are not available..." on the root logger
whenever its I/O package is imported (tocsin uses no Google Cloud I/O), so every command printed it once,
and, being the first line logged, it made the stdlib install its default handler. Beam's subprocess
server logs each start and stop of the runner at WARNING ("Really starting service at ..."): routine,
so it is lowered to INFO.
"""

from __future__ import annotations

import logging

DROPPED_PREFIXES = ("apitools not found",)
ROUTINE = ("Really starting service", "Really destroying service")


class _KnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(DROPPED_PREFIXES):
            return False
        if record.levelno == logging.WARNING and message.startswith(ROUTINE):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


_FILTER = _KnownNoise()


def quiet_known_library_noise() -> None:
    """Idempotent: installs the filter on the root logger and on Beam's subprocess server logger."""
    for name in ("", "apache_beam.utils.subprocess_server"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
