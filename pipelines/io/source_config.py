"""The Kafka source's settings (SourceConfig) and the protocol of its in-reader combining (Combiner)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tocsin.pipelines.io.source_watermark import WatermarkPolicy


@dataclass(frozen=True)
class SourceConfig:
    """Plain settings, so tests can shrink timeouts; all picklable."""

    client: dict
    topics: tuple[str, ...]
    group_id: str
    start: str = "committed"  # committed | earliest | latest | timestamp:<epoch ms>
    # With start=committed and nothing committed yet for the group: where to begin.
    start_if_uncommitted: str = "earliest"
    max_out_of_orderness: float = 5.0
    # Records up to this much behind their partition's watermark still go to the windows (as late data
    # that updates a window within the pipeline's allowed lateness); older ones go to the `late` output.
    allowed_lateness: float = 0.0
    idle_timeout: float = 10.0
    close_when_idle: bool = False  # see source_watermark.py
    # With close_when_idle: how far past its latest event an idle, fully read partition moves at once.
    close_horizon: float = 0.0
    poll_timeout: float = 0.2
    max_records_per_call: int = 50_000
    max_seconds_per_call: float = 1.0
    # Event time: None takes the Kafka record timestamp; else decode() returns it.
    decode: Callable[[bytes], tuple[Any, int | None]] | None = None
    # Combining in the reader: a factory of Combiner (see below); None emits every record.
    combine: Callable[[], Combiner] | None = None
    # Readers; each serves a share of the partitions with one combined watermark.
    shards: int = 1

    def watermark_policy(self) -> WatermarkPolicy:
        return WatermarkPolicy.from_seconds(
            self.max_out_of_orderness,
            self.idle_timeout,
            self.allowed_lateness,
            self.close_when_idle,
            self.close_horizon,
        )


class Combiner:
    """Folds the on-time records of one read call into a few elements (in-reader combining).

    The runner then sees one element per key and time slice of a call instead of one per record: per
    record, Beam's element dispatch, window assignment and coders cost several times what reading it
    does. `add` gets each on-time record (key bytes, decoded value, event ms) in offset order; `drain`
    returns (element, timestamp ms) pairs and starts afresh. A timestamp must lie in the same windows
    as the records it stands for (a time slice that divides every window's period): the windows
    downstream then hold exactly what they would have held record by record.
    """

    def add(self, key: bytes | None, value: Any, event_ms: int) -> None:
        raise NotImplementedError

    def drain(self):
        raise NotImplementedError
