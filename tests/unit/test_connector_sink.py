"""The connector sink's transaction that does not finish: a new producer takes over, and the batch is
written again only if the stuck transaction did not commit. kafka-python's producer waited forever for a
commit after the broker coordinating its transactions was killed (tests/faults/test_cluster_broker_kill.py);
here fake producers stand in for it, one whose commit never returns."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tests.conftest import FIXTURES, wait_for
from tocsin.connectors import base
from tocsin.connectors.base import Batch, ConnectorSink


class FakeProducer:
    def __init__(self, commit: str = "ok"):
        self.commit, self.calls, self.sent = commit, [], []
        self.closed = threading.Event()

    def init_transactions(self):
        self.calls.append("init")

    def begin_transaction(self):
        self.calls.append("begin")

    def send(self, topic, key, value):
        self.sent.append((topic, key, value))

    def commit_transaction(self):
        self.calls.append("commit")
        if self.commit == "never":
            threading.Event().wait()  # as kafka-python's, after its coordinator's broker died
        if self.commit == "fails":
            raise RuntimeError("the broker said no")

    def abort_transaction(self):
        self.calls.append("abort")

    def close(self, timeout=None):
        self.closed.set()


class Sink(ConnectorSink):
    """A sink over the given producers, one per start, with the cursor record `committed` says."""

    def __init__(self, producers: list[FakeProducer], committed):
        self.producers, self.started, self.committed = list(producers), [], committed
        super().__init__({}, "ucdp-ged", "ucdp-ged/sample.csv", "tocsin.incidents.raw.v1", "IncidentReport")

    def _new_producer(self):
        self.started.append(self.producers.pop(0))
        return self.started[-1]

    def _committed_state(self):
        return self.committed(self)


@pytest.fixture
def incident(monkeypatch):
    monkeypatch.setattr(base, "TRANSACTION_TIMEOUT_S", 0.3)
    return json.loads((FIXTURES / "records" / "IncidentReport.json").read_text())


def test_a_commit_that_never_finishes_is_written_again_by_a_new_producer(incident):
    stuck, fresh = FakeProducer("never"), FakeProducer()
    sink = Sink([stuck, fresh], committed=lambda sink: None)  # the stuck transaction was aborted
    started = time.monotonic()
    assert sink.write_batch(Batch(records=[incident]), {"position": 7}) == (1, 0)
    assert time.monotonic() - started < 5
    assert sink.started == [stuck, fresh]
    assert stuck.calls == ["init", "begin", "commit"]  # not aborted: that would wait as the commit did
    assert fresh.calls == ["init", "begin", "commit"]
    assert fresh.sent == stuck.sent and [topic for topic, _, _ in fresh.sent] == [
        "tocsin.incidents.raw.v1",
        "tocsin.connector.state.v1",
    ]
    wait_for(stuck.closed.is_set, 5, message="the stuck producer closed aside")


def test_a_stuck_commit_that_committed_after_all_is_not_written_twice(incident):
    stuck, fresh = FakeProducer("never"), FakeProducer()
    # The new producer's start completed the stuck transaction: its cursor record is the last one.
    sink = Sink([stuck, fresh], committed=lambda sink: sink.started[0].sent[-1][2])
    assert sink.write_batch(Batch(records=[incident]), {"position": 7}) == (1, 0)
    assert fresh.calls == ["init"] and fresh.sent == []


def test_a_commit_that_fails_is_aborted_and_raised_by_the_same_producer(incident):
    failing = FakeProducer("fails")
    sink = Sink([failing], committed=lambda sink: None)
    with pytest.raises(RuntimeError, match="the broker said no"):
        sink.write_batch(Batch(records=[incident]), {"position": 7})
    assert failing.calls == ["init", "begin", "commit", "abort"] and sink.started == [failing]
