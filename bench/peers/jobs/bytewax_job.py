"""Count per key in event-time windows with Bytewax (run with bench/peers/.venvs/bytewax).

Event time is the JSON `ts` field, through `EventClock(ts_getter, wait_for_system_duration=grace)`;
windows are `TumblingWindower` / `SlidingWindower` aligned to the epoch, counted by `count_window`,
written by Bytewax's `KafkaSink`. One worker, as `python -m bytewax.run` starts by default.

Bytewax keeps one clock per key: a key's watermark is its own highest timestamp minus the grace (plus
the wall time since that timestamp was seen), so the `__end__` marker only moves the `__end__` key's
clock, and a key's last windows would wait for wall time (up to a window length) to close. The source
therefore reads with `tail=False`: it stops at the end of the data that is in the topic when it
starts (all of it, here), and end of input closes every window.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bytewax.operators as op  # noqa: E402
from bytewax._bytewax import cli_main  # noqa: E402
from bytewax.connectors.kafka import KafkaSink, KafkaSinkMessage, KafkaSource  # noqa: E402
from bytewax.dataflow import Dataflow  # noqa: E402
from bytewax.operators.windowing import (  # noqa: E402
    EventClock,
    SlidingWindower,
    TumblingWindower,
    count_window,
)
from common import job_args, out_key, out_value  # noqa: E402

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def build(args) -> Dataflow:
    flow = Dataflow("peers_window_count")
    source = KafkaSource([args.bootstrap_servers], [args.input_topic], tail=False)
    messages = op.input("read", flow, source)
    events = op.map("parse", messages, lambda m: json.loads(m.value))
    clock = EventClock(
        ts_getter=lambda e: EPOCH + timedelta(milliseconds=e["ts"]),
        wait_for_system_duration=timedelta(milliseconds=args.grace_ms),
    )
    size, step = timedelta(milliseconds=args.size_ms), timedelta(milliseconds=args.step_ms)
    if size == step:
        windower = TumblingWindower(length=size, align_to=EPOCH)
    else:
        windower = SlidingWindower(length=size, offset=step, align_to=EPOCH)
    counts = count_window("count", events, clock, windower, key=lambda e: e["key"])

    def to_message(item) -> KafkaSinkMessage:
        key, (window_id, count) = item
        start = window_id * args.step_ms  # window id n opens at align_to + n * offset
        return KafkaSinkMessage(
            out_key(key, start).encode(), out_value(key, start, start + args.size_ms, count)
        )

    op.output(
        "write",
        op.map("format", counts.down, to_message),
        KafkaSink([args.bootstrap_servers], args.output_topic),
    )
    return flow


if __name__ == "__main__":
    # As `python -m bytewax.run` runs it without recovery: one worker, 10 s epochs.
    cli_main(build(job_args(__doc__)), workers_per_process=1, epoch_interval=timedelta(seconds=10))
