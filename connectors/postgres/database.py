"""What the postgres connector's source and sink share: a pool with JSON codecs, quoted names,
a table's columns, and which database errors mean the server is away."""

from __future__ import annotations

import json

import asyncpg

from hub.plugin import ServerUnavailable, reason, redact

# Errors that mean "the server or the connection is gone", not "this statement is wrong":
# connection exceptions (08), operator intervention such as admin shutdown (57), and
# "insufficient resources" like too many connections (53).
_UNAVAILABLE_CLASSES = ("08", "57", "53")


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


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection for a check; any failure to connect is ServerUnavailable, the DSN shown
    without its password."""
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except Exception as exc:
        raise ServerUnavailable(f"cannot reach PostgreSQL at {redact(dsn)}: {reason(exc)}") from exc


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
