"""Count per key in event-time windows with Quix Streams (run with bench/peers/.venvs/quix).

Event time is the JSON `ts` field, through the topic's timestamp extractor. Windows are Quix's own
tumbling / hopping windows with `grace_ms`, emitted with `.final()`: once per window, when closed.
Closing strategy "partition": a window closes when the highest timestamp seen in its *partition*
passes its end + grace. With the default, "key", a key's last windows close only when a later record
of the same key arrives, so the end-of-data marker (key `__end__`) could never close them.
Everything else is Quix's default (at-least-once, changelog topics for the window state).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import job_args, out_key  # noqa: E402
from quixstreams import Application  # noqa: E402


def main() -> None:
    args = job_args(__doc__)
    app = Application(
        broker_address=args.bootstrap_servers,
        consumer_group=args.group_id,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(
        args.input_topic,
        key_deserializer="str",
        value_deserializer="json",
        timestamp_extractor=lambda value, headers, timestamp, timestamp_type: value["ts"],
    )
    sink = app.topic(args.output_topic, key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    if args.step_ms == args.size_ms:
        windows = sdf.tumbling_window(args.size_ms, grace_ms=args.grace_ms)
    else:
        windows = sdf.hopping_window(args.size_ms, args.step_ms, grace_ms=args.grace_ms)
    sdf = windows.count().final(closing_strategy="partition")
    sdf = sdf.apply(
        lambda w, key, timestamp, headers: {
            "key": key,
            "window_start": w["start"],
            "window_end": w["end"],
            "count": w["value"],
        },
        metadata=True,
    )
    sdf.to_topic(sink, key=lambda v: out_key(v["key"], v["window_start"]))
    app.run()


if __name__ == "__main__":
    main()
