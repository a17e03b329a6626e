"""PostgreSQL connector: an outbox source (Debezium's outbox layout) and an idempotent table sink.

The source reads `id, aggregatetype, aggregateid, type, payload` rows from an outbox table the
department's application writes in the same transaction as its own change, so an event exists
exactly when the change committed; a department can later switch to Debezium reading the same
table. The sink upserts rows keyed on the hub event id, so delivering an event twice leaves one
row. Implementation: `connectors.pg_outbox` and `connectors.pg_table`; this module holds the
options, the registration and what both share.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.plugin import ConnectorContext, Secret, ServerUnavailable, Sink, Source, reason, redact

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # fullmatch: `$` would let a final "\n" in

# Errors that mean "the server or the connection is gone", not "this statement is wrong":
# connection exceptions (08), operator intervention such as admin shutdown (57), and
# "insufficient resources" like too many connections (53).
_UNAVAILABLE_CLASSES = ("08", "57", "53")


def check_identifier(value: str, what: str) -> str:
    """A plain SQL identifier (letters, digits, `_`); anything else is refused at config time."""
    if not _IDENT.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be letters, digits and '_' (a plain identifier)")
    return value


def qualified(schema: str, table: str) -> str:
    """`"schema"."table"`, from identifiers already checked by `check_identifier`."""
    return f'"{schema}"."{table}"'


def is_unavailable(exc: BaseException) -> bool:
    """Whether a database error means the server is unreachable rather than the data wrong."""
    if isinstance(exc, ValueError | asyncpg.exceptions.ClientConfigurationError):
        return False  # asyncpg's client-side DataError: a value that does not encode
    if isinstance(exc, OSError | TimeoutError | asyncpg.InterfaceError):
        return True
    if isinstance(exc, asyncpg.InternalClientError):
        # A query on a connection still consuming the server's FATAL (admin shutdown): the
        # connection is gone, asyncpg just has not closed it yet.
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = getattr(exc, "sqlstate", "") or ""
        return state[:2] in _UNAVAILABLE_CLASSES
    return False


async def table_columns(conn: asyncpg.Connection, schema: str, table: str) -> dict[str, str]:
    """Column name → type of one table ({} if there is no such table).

    Reads pg_attribute for this one relation instead of information_schema.columns, whose
    privilege checks touch every relation of the database and fail when another session is
    running DDL on one of them at that moment.
    """
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a"
        " WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
        qualified(schema, table),
    )
    return {r["attname"]: r["type"] for r in rows}


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def open_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    """A pool with JSON codecs; any failure to connect is ServerUnavailable (retried)."""
    try:
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=max_size, timeout=10, init=_init_connection
        )
    except Exception as exc:
        # While a database is down or refusing connections every error at connect time is
        # worth a retry; a wrong password stays visible in the degraded state's message.
        raise ServerUnavailable(f"cannot reach PostgreSQL at {redact(dsn)}: {reason(exc)}") from exc
    assert pool is not None
    return pool


@dataclass(frozen=True, kw_only=True)
class OutboxOptions:
    """`[adapters.connector]` of a postgres source: the outbox table to read."""

    dsn: Secret
    table: str = "outbox"
    schema: str = "public"
    prepare: bool = True
    read_batch: int = 500
    max_in_flight: int = 4096
    poll_interval: float = 5.0

    def __post_init__(self) -> None:
        check_identifier(self.table, "table")
        check_identifier(self.schema, "schema")
        if self.read_batch < 1 or self.max_in_flight < self.read_batch:
            raise ValueError("read_batch must be at least 1 and at most max_in_flight")
        if self.poll_interval <= 0:
            raise ValueError("poll_interval must be positive")


@dataclass(frozen=True, kw_only=True)
class TableOptions:
    """`[adapters.connector]` of a postgres sink: the table events are upserted into."""

    dsn: Secret
    table: str
    schema: str = "public"
    key_column: str = "event_id"
    create: bool = False

    def __post_init__(self) -> None:
        check_identifier(self.table, "table")
        check_identifier(self.schema, "schema")
        check_identifier(self.key_column, "key_column")


class PostgresConnector:
    """The `postgres` entry point."""

    name = "postgres"
    source_options = OutboxOptions
    sink_options = TableOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """An outbox source."""
        from connectors.pg_outbox import OutboxSource

        return OutboxSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """A table sink."""
        from connectors.pg_table import TableSink

        return TableSink(options, context)


CONNECTOR = PostgresConnector()
