"""The Kafka source's element (Shard), restriction (ShardOffsets) and restriction tracker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from apache_beam.io.iobase import RestrictionTracker


class Shard(NamedTuple):
    """The partitions one reader serves, as ((topic, partition), ...)."""

    partitions: tuple


@dataclass(frozen=True)
class ShardOffsets:
    """Restriction: the next offset to read per partition, and the watermark to resume each with.

    One restriction covers all partitions of a shard. Beam runners take the minimum watermark over
    restrictions, but Prism lets one restriction's watermark run ahead while another restriction of
    the same stage has not started yet, which made the late one's records late at the next GroupByKey.
    Keeping the partitions of a shard in one restriction, with one combined watermark (the minimum of
    the partitions'), makes that impossible.
    """

    positions: tuple  # ((topic, partition, next_offset), ...)
    resume_wm: tuple = ()  # ((topic, partition, wm_ms), ...) from the committed metadata
    done: bool = False  # a checkpointed primary: nothing more to read


class ShardOffsetsTracker(RestrictionTracker):
    """Claims (topic, partition, offset) positions; splits only to checkpoint at the current positions."""

    def __init__(self, restriction: ShardOffsets):
        self._restriction = restriction
        self._next = {(t, p): o for t, p, o in restriction.positions}
        self._checkpointed = restriction.done

    def current_restriction(self):
        return self._restriction

    def try_claim(self, position) -> bool:
        topic, partition, offset = position
        if self._checkpointed:
            return False
        self._next[(topic, partition)] = offset + 1
        return True

    def try_split(self, fraction_of_remainder):
        # Only a checkpoint (fraction 0) is honoured: cutting the unread offsets of a partition in two
        # would need two readers with their own consumers and watermarks.
        if fraction_of_remainder != 0 or self._checkpointed:
            return None
        self._checkpointed = True
        primary = ShardOffsets(self._restriction.positions, self._restriction.resume_wm, done=True)
        residual = ShardOffsets(
            tuple((t, p, o) for (t, p), o in sorted(self._next.items())), self._restriction.resume_wm
        )
        return primary, residual

    def check_done(self):
        if not self._checkpointed:
            raise ValueError("an unbounded Kafka restriction can only end by a checkpoint")

    def current_progress(self):
        # Unknown, on purpose. An unbounded reader has no fraction done, and any progress returned is
        # rescaled by the SDK with its sampled output byte counts, which are NaN until the first size
        # sample lands: a runner split request in that instant crashed the bundle ("cannot convert
        # float NaN to integer"). With None the SDK assumes half an element and never touches them.
        return None

    def is_bounded(self):
        return False
