"""`tocsin schemas export` and `tocsin schemas register`: tocsin's schemas, out to a folder or a registry."""

from __future__ import annotations

import json
from pathlib import Path

from tocsin.kafka.topics import load_topics
from tocsin.schemas import SCHEMA_DIR
from tocsin.serde.avro import Schema, default_registry
from tocsin.serde.registry_client import RegistryClient
from tocsin.serde.subjects import value_subject


def export_schemas(directory: Path) -> list[Path]:
    """Each shipped schema as `<name>.avsc` in `directory` (the file names of schemas/), as written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for source in sorted(SCHEMA_DIR.glob("*.avsc")):
        target = directory / source.name
        target.write_text(json.dumps(json.loads(source.read_text()), indent=2) + "\n")
        written.append(target)
    return written


def register_schemas(url: str, level: str) -> list[tuple[str, int]]:
    """(subject, id) of every topic's schema, registered under `<topic>-value` after the subject's
    compatibility is set to `level`, so the registry checks the registration itself."""
    client = RegistryClient(url)
    schemas = default_registry()
    out = []
    for topic in load_topics().topics:
        schema: Schema = schemas.get(topic.schema_name)
        subject = value_subject(topic.name)
        client.set_compatibility(subject, level)
        out.append((subject, client.register(subject, schema.text)))
    return out
