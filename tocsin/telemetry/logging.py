"""structlog, configured once per process: JSON lines in production, readable console in development.

Stages bind their context (stage, topic, partition) with `get_logger(stage=...).bind(...)`.
"""

from __future__ import annotations

import logging
import sys

import structlog

from tocsin.credentials import hidden

_configured = False


def _hide_secrets(_logger, _method, event: dict) -> dict:
    """No Kafka secret (tocsin.credentials.Secret) reaches a log line, whatever a caller logs."""
    return {key: hidden(value) for key, value in event.items()}


class _Stderr:
    """Writes to whatever sys.stderr is at the time of the write (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(fmt: str = "console", level: str = "info") -> None:
    """Set up structlog and the stdlib root logger (so library logs share the same format)."""
    global _configured
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        _hide_secrets,
    ]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    numeric = getattr(logging, level.upper())
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),
        cache_logger_on_first_use=True,
    )
    # Library loggers (kafka-python, Beam) go through the same renderer at WARNING and above.
    handler = logging.StreamHandler(_Stderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.WARNING))
    _configured = True


def get_logger(**context) -> structlog.stdlib.BoundLogger:
    if not _configured:
        configure_logging()
    return structlog.get_logger("tocsin").bind(**context)
