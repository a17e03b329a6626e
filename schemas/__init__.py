"""The Avro schemas govhub ships: one named type per file, `<full.name>.avsc`."""

from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent
