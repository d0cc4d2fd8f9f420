"""EncodeAvro: records (dicts) -> OutRecords for WriteToKafka, keyed by their `id`."""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.kafka_sink import OutRecord
from tocsin.serde.avro import default_registry, encode


class EncodeAvro(beam.PTransform):
    """dicts -> OutRecord keyed by `id`, encoded with a tocsin schema (validated unless check=False)."""

    def __init__(self, schema_name: str, fields=None, check: bool = True):
        super().__init__()
        self.schema_name = schema_name
        self.fields = fields
        self.check = check

    def expand(self, records):
        name, fields, check = self.schema_name, self.fields, self.check

        def as_record(record):
            if fields is not None:
                record = fields(record)
            return OutRecord(record["id"].encode(), encode(default_registry().get(name), record, check=check))

        return records | beam.Map(as_record)
