"""Two routers of one --ha-group, the active one killed (kill -9) ten times: the standby takes over each
time, and the run ends with exactly the ledger, Notification records and deliveries of an uninterrupted
single router over the same alert events (the stream, feed and comparison of test_kills_router.py); the
ledger verifies. The killed router is started again as the new standby. Takeover: from the kill to the
standby's API answering ready (it serves its API only once it leads), reported per kill.

Slow (Kafka notices a dead member after its 6 s session timeout; 4 to 6 minutes): marked `faults`.
"""

from __future__ import annotations

import os
import random
import statistics
import time
import urllib.request

import pytest

from tests.conftest import settled
from tests.faults.test_kills_router import (
    Resent,
    Run,
    assert_as_uninterrupted,
    the_stream,
    total,
    uninterrupted,
)
from tests.faults.test_kills_router import webhooks as webhooks  # noqa: F401 (the fixture)
from tocsin.kafka.local_broker import free_port

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = int(os.environ.get("TOCSIN_KILLS", "10"))
GROUP = "test-routers"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=0.5) as answer:
            return answer.status == 200
    except OSError:
        return False


class Pair:
    """Two `tocsin router serve --ha-group` of one run, each on its own API port."""

    def __init__(self, run: Run, start_pipeline):
        self.run, self.start_pipeline = run, start_pipeline
        self.ports = [free_port(), free_port()]
        self.procs = [self._start(0), self._start(1)]

    def _start(self, i: int):
        args = list(self.run.args)
        args[args.index("--listen") + 1] = f"127.0.0.1:{self.ports[i]}"
        return self.start_pipeline(*args, "--ha-group", f"{GROUP}-{self.run.name}")

    def active(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, port in enumerate(self.ports):
                if self.procs[i].alive() and ready(port):
                    return i
            time.sleep(0.05)
        raise AssertionError("no router became active:\n" + "\n".join(p.log_tail() for p in self.procs))

    def restart(self, i: int) -> None:
        self.procs[i] = self._start(i)


@pytest.mark.faults
def test_ten_kills_of_the_active_router_with_a_standby_change_nothing(
    bootstrap, make_topic, start_pipeline, webhooks, tmp_path
):
    started = time.monotonic()
    stream = the_stream()
    (expected_ledger, expected_records, expected_deliveries), entries = uninterrupted(
        stream, bootstrap, make_topic, start_pipeline, webhooks, tmp_path
    )

    killed = Run("standby", bootstrap, make_topic, tmp_path, webhooks)
    pair = Pair(killed, start_pipeline)
    first = pair.active()
    feed = killed.feed(stream)
    rng = random.Random(20261202)
    resent, takeovers, kill_points = Resent(), [], []
    targets = [int((k + rng.random()) * entries / KILLS) for k in range(KILLS)]
    for target in targets:
        killed.reach(target, feed)
        time.sleep(rng.uniform(0, 1))
        active = pair.active()
        pair.procs[active].kill()
        down = time.monotonic()
        # A transaction the killed router was committing completes on the broker meanwhile (one it had
        # not committed stays open, and its successor aborts it): what the ledger keeps is known then.
        time.sleep(0.5)
        ledger = killed.ledger.caught_up()
        cut = resent.count(ledger, killed.deliveries(), killed.notifications.caught_up())
        kill_points.append(f"{len(ledger)}{'*' if cut else ''}")
        other = pair.active(timeout=60)
        takeovers.append(time.monotonic() - down)
        assert other != active
        pair.restart(active)  # the new standby
        assert killed.error is None, killed.error
    feed.join(300)
    active = pair.active()
    assert killed.error is None, f"{killed.error}\n{pair.procs[active].log_tail()}"
    settled(lambda: len(killed.ledger.records), pair.procs[active], 4, 120, "the standby run's ledger")
    ledger, records, delivered = killed.outcome()
    killed.close()
    for proc in pair.procs:
        proc.kill()

    assert_as_uninterrupted(
        (ledger, records, delivered),
        (expected_ledger, expected_records, expected_deliveries),
        resent,
        bootstrap,
        killed.topics["ledger"],
    )
    print(
        f"\nactive router killed {KILLS} times with a standby (router {first} active first): "
        f"{total(expected_deliveries)} deliveries, {entries} ledger entries, as one uninterrupted router; "
        f"takeover {min(takeovers):.1f}-{max(takeovers):.1f} s (median {statistics.median(takeovers):.1f}); "
        f"kills at ledger entries {', '.join(kill_points)} (*: between a delivery and its entry, re-sent "
        f"once); {time.monotonic() - started:.0f}s"
    )
