"""A local Apicurio Registry, a real schema registry with the Confluent Schema Registry API at
/apis/ccompat/v7, for the tests and development.

Fetched from Maven Central by `make schema-registry` (deploy/schema-registry/pom.xml) into
.cache/schema-registry/app: Apicurio's `all` zip, a Quarkus runner jar beside its lib/, with in-memory
(H2) storage, so each start is an empty registry. This module starts it on a loopback port, waits until
the Confluent API answers (about 25 s on two cores: Quarkus' start), and stops it by its process group.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tocsin.config import cache_dirs

CCOMPAT = "/apis/ccompat/v7"


class RegistryStartError(RuntimeError):
    """The local registry did not start or did not answer."""


def find_registry_jar() -> Path | None:
    """The runner jar `make schema-registry` unpacked, in the first cache folder that has one."""
    for folder in cache_dirs():
        found = sorted((folder / "schema-registry" / "app").glob("apicurio-registry-app-*-runner.jar"))
        if found:
            return found[-1]
    return None


@dataclass
class LocalRegistry:
    jar: Path
    port: int
    log_file: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The Confluent API's base URL: what --schema-registry-url takes."""
        return f"http://127.0.0.1:{self.port}{CCOMPAT}"

    def command(self) -> list[str]:
        return [
            os.environ.get("JAVA", "java"),
            "-Xmx384m",
            f"-Dquarkus.http.port={self.port}",
            "-Dquarkus.http.host=127.0.0.1",
            "-jar",
            str(self.jar),
        ]

    def start(self, timeout: float = 150.0) -> str:
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own group: stop() ends the JVM and nothing else
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RegistryStartError(
                    f"the registry exited with code {self.proc.returncode}; see {self.log_file}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/subjects", timeout=2) as answer:
                    json.loads(answer.read())
                return self.url
            except (urllib.error.URLError, OSError, ValueError):
                time.sleep(0.5)
        self.stop()
        raise RegistryStartError(f"the registry did not answer within {timeout:.0f}s; see {self.log_file}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
