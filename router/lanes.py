"""The router's senders: a thread per channel of each receiver (a lane), sending outside the lock.

A lane makes its deliveries one at a time, in the order they were queued (outbox.next_of), each when it
is due (a retry waits out its delay): it takes the router's lock only to pick the delivery and to record
the attempt, never while it sends, so a receiver that hangs (up to its channel's timeout) or keeps
failing holds back its own lane only; the router's decisions, the HTTP API's answers and the other lanes
go on. The lanes wait on one condition of the router's lock, notified when a delivery is queued (wake).
"""

from __future__ import annotations

import threading

from kafka.errors import ProducerFencedError

from tocsin.router.outbox import next_of

IDLE_S = 1.0  # a lane with nothing due looks again at least this often (the clock may be a test's)


class Lanes:
    def __init__(self, router):
        self.router = router
        self.lanes = [(r.name, i) for r in router.config.receivers.values() for i in range(len(r.channels))]
        self.changed = threading.Condition(router.lock)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for receiver, channel in self.lanes:
            thread = threading.Thread(
                target=self._run, args=((receiver, channel),), name=f"lane {receiver}#{channel}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop picking deliveries; a lane in the middle of a send drops its outcome (not recorded: a
        restart makes that attempt again), so nothing is written once the router closes."""
        self.stopping.set()
        self.wake()
        for thread in self.threads:
            thread.join(timeout)

    def _run(self, lane: tuple[str, int]) -> None:
        router = self.router
        while not self.stopping.is_set():
            with self.changed:
                owed = next_of(router.state.pending, lane)
                now = router.clock()
                if owed is None or owed.next_at > now:
                    self.changed.wait(IDLE_S if owed is None else min(owed.next_at - now, IDLE_S))
                    continue
            result = router.attempt(owed)
            with self.changed:
                if self.stopping.is_set() or router.fenced.is_set():
                    return
                if router.state.pending.get(owed.id) is owed:
                    try:
                        router.record(owed, *result)
                    except ProducerFencedError:  # another router took over: it makes this attempt
                        router.fenced.set()
                        return
