"""A stage as a child process: `python ARGS` in its own process group, its output to a log file.

The one way the demo, the tests and the benchmarks run a pipeline or the router as a process. Its own
process group, so stopping it stops what it started (a Beam job's Prism runner, a job server); `stop()`
is an orderly SIGTERM (a restart), `kill()` a SIGKILL (a crash, as the fault tests inject it).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class StageProcess:
    def __init__(self, args: list[str], log_path: Path, cwd: Path | None = None, env: dict | None = None):
        self.log_path = Path(log_path)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *args],
                cwd=cwd,
                env=env,
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace_s: float = 15) -> None:
        """SIGTERM to the group; SIGKILL if it has not ended within `grace_s`."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace_s)
                return
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        if self.alive():
            self._signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:  # ended between the check and the signal
            pass

    def __enter__(self) -> StageProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.kill()
