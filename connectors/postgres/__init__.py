"""PostgreSQL connector: an outbox source (Debezium's outbox layout) and an idempotent table sink.

The source reads `id, aggregatetype, aggregateid, type, payload` rows from an outbox table the
department's application writes in the same transaction as its own change, so an event exists
exactly when the change committed; a department can later switch to Debezium reading the same
table. The sink upserts rows keyed on the hub event id, so delivering an event twice leaves one
row. Implementation: `outbox.py` (the source), `table.py` (the sink), `options.py`, and
`database.py` for what both share; this module registers them.
"""

from __future__ import annotations

from typing import Any

from connectors.postgres.options import OutboxOptions, TableOptions
from connectors.postgres.outbox import OutboxSource
from connectors.postgres.table import TableSink
from hub.plugin import ConnectorContext, Sink, Source

__all__ = [
    "CONNECTOR",
    "OutboxOptions",
    "OutboxSource",
    "PostgresConnector",
    "TableOptions",
    "TableSink",
]


class PostgresConnector:
    """The `postgres` entry point."""

    name = "postgres"
    source_options = OutboxOptions
    sink_options = TableOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """An outbox source."""
        return OutboxSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """A table sink."""
        return TableSink(options, context)


CONNECTOR = PostgresConnector()
