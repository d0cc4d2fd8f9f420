"""Count per key in event-time windows with Pathway (run with bench/peers/.venvs/pathway).

`pw.io.kafka.read(format="json")` with the JSON `ts` (epoch ms, an int) as the time column;
`windowby(ts, window=pw.temporal.tumbling / sliding, instance=key)` with
`behavior=pw.temporal.exactly_once_behavior(shift=grace)`: Pathway's behavior with a cutoff of
`grace` that emits each window once, when the operator's time reaches window end + grace (it is
`common_behavior(delay=length + grace, cutoff=grace)`). Pathway's time is the highest event time the
operator has seen over the whole table (all partitions), advanced once per minibatch
(autocommit_duration_ms, default 1.5 s), so which late records it drops depends on how the reads
were batched. Written by `pw.io.kafka.write(format="json", key=...)`: its values also carry Pathway's
`time` and `diff` fields.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pathway as pw  # noqa: E402
from common import job_args  # noqa: E402


class Event(pw.Schema):
    key: str
    ts: int
    v: int


def main() -> None:
    args = job_args(__doc__)
    events = pw.io.kafka.read(
        {
            "bootstrap.servers": args.bootstrap_servers,
            "group.id": args.group_id,
            "auto.offset.reset": "earliest",
        },
        topic=args.input_topic,
        schema=Event,
        format="json",
    )
    if args.step_ms == args.size_ms:
        window = pw.temporal.tumbling(duration=args.size_ms, origin=0)
    else:
        window = pw.temporal.sliding(hop=args.step_ms, duration=args.size_ms, origin=0)
    counts = events.windowby(
        events.ts,
        window=window,
        instance=events.key,
        behavior=pw.temporal.exactly_once_behavior(shift=args.grace_ms),
    ).reduce(
        key=pw.this._pw_instance,
        window_start=pw.this._pw_window_start,
        window_end=pw.this._pw_window_end,
        count=pw.reducers.count(),
    )
    counts = counts.with_columns(out_key=pw.this.key + "@" + pw.cast(str, pw.this.window_start))
    pw.io.kafka.write(
        counts.select(pw.this.key, pw.this.window_start, pw.this.window_end, pw.this.count, pw.this.out_key),
        {"bootstrap.servers": args.bootstrap_servers},
        topic_name=args.output_topic,
        format="json",
        key=pw.this.out_key,
    )
    pw.run(monitoring_level=pw.MonitoringLevel.NONE)


if __name__ == "__main__":
    main()
