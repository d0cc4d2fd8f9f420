"""Library log lines that say nothing to an operator, dropped before any library is imported.

Beam logs "apitools not found, and bigquery client libraries are not available..." on the root logger
whenever its I/O package is imported (tocsin uses no Google Cloud I/O), so every command printed it once,
and, being the first line logged, it made the stdlib install its default handler. Beam's subprocess
server logs each start and stop of the runner at WARNING ("Really starting service at ..."): routine,
so it is lowered to INFO.

kafka-python logs every failed attempt to reach a broker, at ERROR and WARNING, several lines a second
("Connection failed: ...", "Bootstrap connection to bootstrap-0 failed: ...", "<KafkaConnection ...>:
Connection lost: ..."), while it retries by itself; when it gives up, it raises, and the command says so
in one line (tocsin.cli_errors). Those attempts are lowered to DEBUG. Its event loop also warns when
one of its own tasks ran long ("Task <kafka.net.selector.Task ...> ran for 1.2s ... blocking the event
loop"), which happens when a pipeline's bundle keeps the GIL: nothing an operator can act on, DEBUG too.
"""

from __future__ import annotations

import logging

DROPPED_PREFIXES = ("apitools not found",)
ROUTINE = ("Really starting service", "Really destroying service")
KAFKA_LOGGERS = (
    "kafka.net.manager",
    "kafka.net.connection",
    "kafka.net.selector",
    "kafka.conn",
    "kafka.client_async",
)
KAFKA_RETRIES = ("Connection failed: ", "Bootstrap ", "Unable to bootstrap")
KAFKA_RETRY_MARKS = (
    ": Connection lost: ",
    ": Connection failed: ",
    "Connect attempt to ",
    "blocking the event loop",
)


class _KnownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(DROPPED_PREFIXES):
            return False
        if record.levelno == logging.WARNING and message.startswith(ROUTINE):
            return _lowered(record, logging.INFO)
        if record.name in KAFKA_LOGGERS and record.levelno >= logging.WARNING and _kafka_retry(message):
            return _lowered(record, logging.DEBUG)
        return True


def _kafka_retry(message: str) -> bool:
    return message.startswith(KAFKA_RETRIES) or any(mark in message for mark in KAFKA_RETRY_MARKS)


def _lowered(record: logging.LogRecord, level: int) -> bool:
    record.levelno, record.levelname = level, logging.getLevelName(level)
    return logging.getLogger().isEnabledFor(level)


_FILTER = _KnownNoise()


def quiet_known_library_noise() -> None:
    """Idempotent: installs the filter on the root logger and on the loggers it lowers records of (a
    logger's filters see only its own records, not those its children propagate to it)."""
    for name in ("", "apache_beam.utils.subprocess_server", *KAFKA_LOGGERS):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
