"""EncodeAvro: records (dicts) -> OutRecords for WriteToKafka, keyed by their `id`."""

from __future__ import annotations

import apache_beam as beam

from tocsin.pipelines.io.kafka_sink import OutRecord
from tocsin.serde import wire
from tocsin.serde.avro import default_registry, encode


class EncodeAvro(beam.PTransform):
    """dicts -> OutRecord keyed by `id`, encoded with a tocsin schema (validated unless check=False).

    Framed as the job's --serialization says; with registry framing the schema is registered under
    `<topic>-value` (`topic`: the topic the records go to; default the one topics.yaml gives the schema).
    `cloudevent(record, value, source)`, if given, makes each record a CloudEvent in binary content mode:
    the headers it returns (tocsin.serde.cloudevents), with the job's --cloudevents-source.
    """

    def __init__(
        self, schema_name: str, fields=None, check: bool = True, topic: str | None = None, cloudevent=None
    ):
        super().__init__()
        self.schema_name = schema_name
        self.fields = fields
        self.check = check
        self.topic = topic
        self.cloudevent = cloudevent

    def expand(self, records):
        name, fields, check, topic, cloudevent = (
            self.schema_name,
            self.fields,
            self.check,
            self.topic,
            self.cloudevent,
        )
        # Taken when the pipeline is built (after job_options set it) and pickled with the step, so a
        # remote runner's workers frame as the launcher was told, not as their own environment says.
        settings = wire.current()

        def as_record(record):
            if fields is not None:
                record = fields(record)
            value = encode(default_registry().get(name), record, check=check, topic=topic, settings=settings)
            headers = cloudevent(record, value, settings.cloudevents_source) if cloudevent else ()
            return OutRecord(record["id"].encode(), value, headers)

        return records | beam.Map(as_record)
