"""Parsers of the external formats tocsin reads: UCDP GED and ReliefWeb listing CSV, GDELT 2.0 exports, the
ReliefWeb API's JSON, RSS/Atom. Each is pure (source bytes or text -> raw IncidentReport / NewsItem dicts,
or Rejects) and knows nothing of Kafka.

They are in the core, not in the connectors, because two kinds of stage read these formats: the
connectors, which publish the records to Kafka, and the batch pipelines and back-test, which read the
files directly (`files.read_records`); a stage imports only the core, never another stage.
"""
