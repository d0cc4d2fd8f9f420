"""Which of several routers is the active one: the member of a Kafka consumer group that holds the
ledger topic's one partition.

Two (or more) `tocsin router serve --ha-group NAME` join the group NAME on the ledger topic; Kafka's group
coordinator assigns its single partition to one member, which is the active router; the others wait as
standbys. When the active one dies (kill -9, a lost host), the coordinator notices within the session
timeout and assigns the partition to a standby, which takes over: it fences the old one's producer
(LedgerWriter's transactional id, the same for every member: Kafka refuses the writes of an older
producer epoch), reads the ledger and goes on. Leadership is only a hint of who should write; fencing is
what makes it safe, so a router that was paused past its session (a long GC, a frozen VM) and wakes up
cannot append to the chain that its successor now extends.

No topic of its own: the ledger has exactly one partition, which is what a single leader needs, and the
partition is paused once assigned (the group's members read nothing through it; the router reads the
ledger with its own consumer).
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.coordinator.assignors.sticky.sticky_assignor import StickyPartitionAssignor

from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import gauge

LEADER = gauge("tocsin_router_leader", "1: this router is the active one of its --ha-group; 0: a standby")
SESSION_TIMEOUT_MS = 6000  # the broker's default group.min.session.timeout.ms: the fastest takeover it allows
HEARTBEAT_MS = 1000
# The run loop polls every tick; a router whose loop is stuck this long has lost its leadership anyway.
MAX_POLL_INTERVAL_MS = 30_000


class _Listener(ConsumerRebalanceListener):
    """Kafka's classic protocol takes every partition back from every member at each rebalance (a
    standby joining, one leaving) and then hands them out again; the sticky assignor gives the partition
    back to the member that held it. So a revocation alone is no loss: only an assignment without the
    partition is."""

    def __init__(self, leadership: Leadership):
        self.leadership = leadership

    def on_partitions_revoked(self, revoked):
        pass

    def on_partitions_assigned(self, assigned):
        if assigned:
            self.leadership.consumer.pause(*assigned)
            self.leadership.held.set()
        elif self.leadership.held.is_set():
            self.leadership.lost.set()


class Leadership:
    """Membership of the group; `wait` until this router leads, `keep` while it does (call it often)."""

    def __init__(self, client: dict, topic: str, group: str):
        self.group, self.topic = group, topic
        self.held, self.lost = threading.Event(), threading.Event()
        self.log = get_logger(stage="router")
        self.consumer = KafkaConsumer(
            group_id=group,
            enable_auto_commit=False,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_MS,
            max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
            partition_assignment_strategy=[StickyPartitionAssignor],
            **client,
        )
        self.consumer.subscribe([topic], listener=_Listener(self))

    def wait(self, stop: threading.Event) -> bool:
        """Block until this member holds the partition (True) or `stop` is set (False)."""
        started = time.monotonic()
        self.log.info("waiting to lead", group=self.group, topic=self.topic)
        while not stop.is_set() and not self.held.is_set():
            self.consumer.poll(timeout_ms=200)
        if self.held.is_set():
            self.log.info("leading", group=self.group, waited_s=round(time.monotonic() - started, 1))
        return self.held.is_set()

    def keep(self) -> bool:
        """Whether this member still leads (a rebalance that took the partition away: no longer)."""
        self.consumer.poll(timeout_ms=0)
        return self.held.is_set() and not self.lost.is_set()

    def close(self) -> None:
        try:
            self.consumer.close()
        except Exception:  # noqa: BLE001 (closing after a failure must not hide it)
            pass
