"""ReadFromKafka: an unbounded Kafka source for Beam pipelines, as a Python splittable DoFn.

Each shard (one by default) reads its partitions with manual assignment (consumer.py; no group
rebalancing: the runner decides where work runs), in one restriction. Each partition has its own
watermark: the highest event time seen minus the allowed out-of-orderness; once the partition has been
idle for `idle_timeout` it moves on with the wall clock, so an idle partition never stalls the pipeline.
The shard reports the minimum.

Lateness is decided per record, exactly: a record is late when its event time is behind its
partition's watermark as it stands at that record (moved on by every earlier record of the partition,
not once per read call), minus the allowed lateness. Late records leave on the `late` output (to the
dead-letter topic), never silently; every other record reaches windows that are still open at every
runner, since the runner's watermark is never ahead of a partition's. The outcome for a record thus
depends only on the records before it in its partition (and the watermark a restart resumes with),
never on how the reads happened to fall: the reference job's test computes it independently.

With a `Combiner` (config.combine), the on-time records of each read call are folded in the reader
into one element per key and time slice (in-reader combining), so the runner handles a few elements
per call rather than one per record.

Offsets are not committed here: the source emits progress markers on the `progress` output, and
`CommitWhenDurable` (commit.py) commits an offset only once the pipeline's sink has flushed every window
that records below that offset fall in. On restart the source resumes from the committed offset and
with the committed watermark, so a crash never loses input and never double counts a window.

This module is the composite and the source's public names; the parts are its siblings (modules, not a
package: pyproject.toml lists the packages a wheel installs):
  source_config.py       SourceConfig, the Combiner protocol
  source_records.py      output tags, KafkaRecord, Progress, drained()
  source_watermark.py    the watermark and lateness policy, pure (the clock passed in)
  source_estimator.py    ShardWatermark, Beam's estimator over that policy
  source_restriction.py  Shard, ShardOffsets and their tracker
  source_read.py         ReadShard, the splittable DoFn (the reader loop)
  source_partitions.py   listing the partitions and dealing them to shards
  source_dead_letters.py the dead letter of a record that failed to decode
"""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.source_config import Combiner, SourceConfig
from tocsin.pipelines.io.source_dead_letters import decode_failure
from tocsin.pipelines.io.source_partitions import ListPartitions
from tocsin.pipelines.io.source_read import ReadShard
from tocsin.pipelines.io.source_records import DEAD_LETTER, LATE, PROGRESS, KafkaRecord, Progress, drained

__all__ = [
    "DEAD_LETTER",
    "LATE",
    "PROGRESS",
    "Combiner",
    "KafkaRecord",
    "Progress",
    "ReadFromKafka",
    "SourceConfig",
    "decode_failure",
    "drained",
]


class ReadFromKafka(beam.PTransform):
    """Read topics as an unbounded, event-timed PCollection of KafkaRecord.

    Outputs (a DoOutputsTuple): main (records), `progress` (offset markers for CommitWhenDurable),
    `dead_letter` (records that failed to decode, as DeadLetter dicts), `late` (records older than
    their partition's watermark).
    """

    def __init__(self, config: SourceConfig):
        super().__init__()
        self.config = config

    def expand(self, pbegin):
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "ListPartitions" >> beam.ParDo(ListPartitions(self.config))
            | "ReadShards"
            >> beam.ParDo(ReadShard(self.config)).with_outputs(PROGRESS, DEAD_LETTER, LATE, main="records")
        )
