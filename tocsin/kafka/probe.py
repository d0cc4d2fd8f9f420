"""Does Kafka answer? A readiness probe for the web apps: a metadata request within a short timeout.

A producer's own state cannot say it (kafka-python reconnects lazily and keeps cached metadata), so the
probe asks a broker, and remembers the answer for `ttl_s` so that a busy load balancer's probes do not
each open a connection.
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaAdminClient


class KafkaProbe:
    """Callable: [] when a broker answered within `timeout_s`, else the one reason it did not."""

    def __init__(self, client: dict, timeout_s: float = 2.0, ttl_s: float = 5.0, clock=time.monotonic):
        self.client = client
        self.timeout_ms = int(timeout_s * 1000)
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: tuple[float, list[str]] | None = None

    def __call__(self) -> list[str]:
        with self._lock:
            if self._last is not None and self.clock() - self._last[0] < self.ttl_s:
                return self._last[1]
            problems = self._ask()
            self._last = (self.clock(), problems)
            return problems

    def _ask(self) -> list[str]:
        settings = {
            **self.client,
            "bootstrap_timeout_ms": self.timeout_ms,
            "request_timeout_ms": self.timeout_ms,
        }
        try:
            admin = KafkaAdminClient(**settings)
        except Exception as error:  # every failure to reach a broker is the same answer: not ready
            return [f"kafka: no broker answered within {self.timeout_ms / 1000:g} s ({type(error).__name__})"]
        try:
            admin.describe_cluster()
        except Exception as error:
            return [f"kafka: the cluster did not describe itself ({type(error).__name__})"]
        finally:
            admin.close()
        return []
