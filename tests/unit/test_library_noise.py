"""Beam's import-time 'apitools not found' warning and its routine runner start/stop lines stay quiet."""

from __future__ import annotations

import logging
import subprocess
import sys


def test_importing_beam_io_after_tocsin_prints_no_apitools_warning():
    done = subprocess.run(
        [sys.executable, "-c", "import tocsin, apache_beam.io"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "apitools" not in done.stderr


def test_runner_start_and_stop_are_info_not_warnings(caplog):
    import tocsin  # noqa: F401 (installs the filter)

    log = logging.getLogger("apache_beam.utils.subprocess_server")
    with caplog.at_level(logging.INFO):
        log.warning("Really starting service at localhost:1 with cmd: ('prism',)")
        log.warning("Something else went wrong")
    assert [(r.levelname, r.getMessage()[:23]) for r in caplog.records] == [
        ("INFO", "Really starting service"),
        ("WARNING", "Something else went wro"),
    ]


def test_kafka_pythons_own_retries_and_slow_tasks_are_debug_not_warnings(caplog):
    import tocsin  # noqa: F401 (installs the filter)

    with caplog.at_level(logging.DEBUG):
        logging.getLogger("kafka.net.selector").warning(
            "Task <kafka.net.selector.Task object at 0x7f> ran for 1.2s (>1.0s threshold). It is blocking "
            "the event loop -- likely a tight sync loop inside a coroutine. Other pollers will time out."
        )
        logging.getLogger("kafka.conn").error("<KafkaConnection node_id=1>: Connection failed: refused")
        logging.getLogger("kafka.conn").warning("Unexpected reply from the broker")
    assert [r.levelname for r in caplog.records] == ["DEBUG", "DEBUG", "WARNING"]
