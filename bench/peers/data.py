"""The benchmark's input, generated from a seed, and the window counts it should produce.

Layout (the same for every system):
- `keys` keys `k0..k49`; key `kN` always goes to partition `N % partitions` (key-affine, as a keyed
  Kafka producer would place it; the number rather than a hash keeps the partitions balanced).
- Event times span `span_ms` from `START_MS`. Within a partition the on-time events are written in
  event-time order up to a jitter of less than `JITTER_MS` (4 s, below the 5 s grace with a margin
  for clocks that also creep with wall time, such as Bytewax's).
- `late_fraction` of the events are written 90-300 s behind the latest event time of their partition:
  every policy with a 5 s grace must keep them out of a 60 s tumbling window.
- After the data, one `__end__` record per partition far ahead in event time, so that every
  partition's watermark passes the last window and every system closes every window without
  waiting for idle timeouts. `__end__` is never scored.

Truth (`truth()`): the count per output key `<key>@<window start ms>` under one of these policies,
each given the partition's (or key's) state *before* the record, in write order:
- `all`: every record counts in every window it falls in.
- `record` (tocsin): a record is late when its event time is below the watermark, the highest event
  time of the earlier records of its partition minus the grace; a late record counts nowhere.
- `record-per-key` (Bytewax): the same, with the watermark of the record's key instead.
- `window` (Quix Streams, Pathway): a record counts in each of its windows whose end + grace is still
  after the highest event time of the earlier records of its partition; in the others it is late.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass

START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: fixed, so the data (and truth) never depend on today
JITTER_MS = 4_000
LATE_LAG_MS = (90_000, 300_000)
END_KEY = "__end__"
END_AHEAD_MS = 2 * 3_600_000  # the end markers' event time, past the last event
POLICIES = ("all", "record", "record-per-key", "window")


@dataclass(frozen=True)
class Event:
    partition: int
    key: str
    ts: int  # event time, epoch ms; also the record's Kafka timestamp
    late: bool  # written 90-300 s behind its partition (not what any system decides)
    v: int

    def value(self) -> bytes:
        return json.dumps({"key": self.key, "ts": self.ts, "v": self.v}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Dataset:
    events: list[Event]  # in write order: per partition, the order the records have in Kafka
    ends: list[Event]  # one `__end__` per partition, written after the events
    partitions: int
    keys: int
    span_ms: int
    late_fraction: float
    seed: int

    def config(self) -> dict:
        return {
            "events": len(self.events),
            "late_events": sum(e.late for e in self.events),
            "keys": self.keys,
            "partitions": self.partitions,
            "span_ms": self.span_ms,
            "start_ms": START_MS,
            "late_fraction": self.late_fraction,
            "jitter_ms_below": JITTER_MS,
            "late_lag_ms": list(LATE_LAG_MS),
            "partitioning": "key kN -> partition N % partitions",
            "seed": self.seed,
        }


def generate(
    events: int,
    keys: int = 50,
    partitions: int = 4,
    span_ms: int = 2 * 3_600_000,
    late_fraction: float = 0.01,
    seed: int = 20240101,
) -> Dataset:
    rng = random.Random(seed)
    # "Arrival" times, sorted: the write order. Each on-time event is its arrival minus a jitter, so
    # within a partition it is less than JITTER_MS behind any earlier event.
    arrivals = sorted(rng.randrange(span_ms) for _ in range(events))
    # Exactly `late_fraction` late events, none among the very first (they need a partition history).
    late_at = set(rng.sample(range(min(100, events), events), round(events * late_fraction)))
    high: dict[int, int] = {}
    out = []
    for i, arrival in enumerate(arrivals):
        n = rng.randrange(keys)
        p = n % partitions
        late = i in late_at and p in high
        if late:
            ts = high[p] - rng.randint(*LATE_LAG_MS)
        else:
            ts = START_MS + arrival - rng.randrange(JITTER_MS)
            high[p] = max(high.get(p, ts), ts)
        out.append(Event(p, f"k{n}", ts, late, rng.randrange(1000)))
    end_ts = START_MS + span_ms + END_AHEAD_MS
    ends = [Event(p, END_KEY, end_ts, False, 0) for p in range(partitions)]
    return Dataset(out, ends, partitions, keys, span_ms, late_fraction, seed)


def window_starts(ts: int, size_ms: int, step_ms: int) -> range:
    """Starts of the windows [start, start + size) holding `ts`, aligned to the epoch (every system
    here aligns to it: Quix and Pathway with origin 0, Bytewax with align_to=epoch, Beam natively)."""
    last = ts - ts % step_ms
    return range(last, ts - size_ms, -step_ms)


def truth(data: Dataset, size_ms: int, step_ms: int, grace_ms: int, policy: str) -> dict[str, int]:
    """Expected count per output key `<key>@<window start ms>` under `policy` (see the module doc)."""
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}: one of {', '.join(POLICIES)}")
    counts: Counter[str] = Counter()
    high_partition: dict[int, int] = {}
    high_key: dict[str, int] = {}
    for e in data.events:
        before = high_key.get(e.key) if policy == "record-per-key" else high_partition.get(e.partition)
        for start in window_starts(e.ts, size_ms, step_ms):
            if before is not None:
                if policy in ("record", "record-per-key") and e.ts < before - grace_ms:
                    break  # late: in no window at all
                if policy == "window" and start + size_ms + grace_ms <= before:
                    continue  # this window had closed; a later one may still be open
            counts[f"{e.key}@{start}"] += 1
        high_partition[e.partition] = max(high_partition.get(e.partition, e.ts), e.ts)
        high_key[e.key] = max(high_key.get(e.key, e.ts), e.ts)
    return dict(counts)


def produce(bootstrap: str, topic: str, data: Dataset, progress=None) -> None:
    """Write the events, then the end markers, with kafka-python (tocsin's client): Kafka key = the
    key, Kafka timestamp = the event time, explicit partition."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=1_048_576, compression_type=None
    )
    for i, e in enumerate(data.events):
        producer.send(topic, key=e.key.encode(), value=e.value(), partition=e.partition, timestamp_ms=e.ts)
        if progress and i % 5000 == 0:
            progress(i)
    producer.flush()  # every event is in before any end marker
    for e in data.ends:
        producer.send(topic, key=e.key.encode(), value=e.value(), partition=e.partition, timestamp_ms=e.ts)
    producer.flush()
    producer.close()
    if progress:
        progress(len(data.events))
