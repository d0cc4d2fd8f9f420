"""The Avro schemas of tocsin's topics (one record per `.avsc` file, namespace `tocsin`)."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).parent
