"""Kafka calls of a running job that kafka-python gives up on while the broker restarts: tried again.

Prism does not retry a bundle: a bundle that raises fails the job. Three calls raised while the broker
restarted (tests/faults/test_broker_restarts.py): making a client in a DoFn's setup, which a runner calls
whenever it makes a new instance of the DoFn (a stage's first bundle, another bundle of the stage at the
same time), not only at start, and where kafka-python's clients bootstrap and raise once
`bootstrap_timeout_ms` (5 s) passed without a broker; the committer's commit, which raises on a
connection the restarting broker reset, or after its request timeout (30 s); and the sink's send, which
raises when the producer has no metadata for the topic within `max_block_ms` (60 s): kafka-python backs
off reconnecting for up to 30 s, so a producer can miss a broker that is back. At start, the jobs wait for
the broker with `--broker-wait` (options.when_kafka_answers); mid-stream, such a call is tried again for
as long as a producer retries a record it could not send.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from kafka.errors import KafkaError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_delay, wait_exponential

from tocsin.cli_errors import KAFKA_UNREACHABLE
from tocsin.telemetry.logging import get_logger

T = TypeVar("T")

# kafka-python's delivery_timeout_ms: a broker away for longer fails the job as a send would.
RECONNECT_S = 120.0


def unanswered(error: BaseException) -> bool:
    """The broker did not answer (yet): no connection, a timeout, no coordinator or leader yet."""
    return isinstance(error, KAFKA_UNREACHABLE) or (isinstance(error, KafkaError) and error.retriable)


def when_broker_answers(call: Callable[[], T], what: str, wait_s: float = RECONNECT_S) -> T:
    """`call()`, tried again with backoff (1 s, 2 s, 4 s... at most 10 s) while the broker does not
    answer, for up to `wait_s`; then its error is raised (the bundle fails). Only for calls that may be
    made twice: making a client, committing the same offsets, a send that appended nothing."""

    def waiting(state: RetryCallState) -> None:
        get_logger(stage="pipeline").warning(
            "kafka not answering, retrying",
            what=what,
            error=repr(state.outcome.exception()) if state.outcome else None,
            attempt=state.attempt_number,
            retry_in_s=round(state.next_action.sleep, 1) if state.next_action else None,
            waited_s=round(state.seconds_since_start or 0.0, 1),
        )

    retrying = Retrying(
        retry=retry_if_exception(unanswered),
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=1, max=10),
        before_sleep=waiting,
        reraise=True,
    )
    return retrying(call)
