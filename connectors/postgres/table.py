"""The table sink: records upserted into a department table, keyed on the hub event id.

Each record's value is a row (column → value); the key column gets the event id, and
`INSERT … ON CONFLICT (key) DO UPDATE` makes a second delivery of the same event rewrite the
same row instead of adding one. A batch is one transaction; if the database refuses it for a
data reason, the records are written one by one so that only the bad ones are refused.
`create = true` creates a landing table (event id, source, type, subject, time, data jsonb)
when none exists, which is what the generic `events` adapter writes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog

from connectors.postgres.database import (
    connect,
    is_unavailable,
    open_pool,
    qualified,
    table_columns,
)
from connectors.postgres.options import TableOptions
from hub.plugin import (
    Check,
    ConfigError,
    ConnectorContext,
    Outcome,
    Record,
    reason,
)

log = structlog.get_logger("connectors.postgres")


def landing_table_ddl(schema: str, table: str, key: str) -> str:
    """A table for hub events as they are: what `create = true` makes."""
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(schema, table)} ("
        f' "{key}" text PRIMARY KEY, source text NOT NULL, type text NOT NULL,'
        " subject text NOT NULL, time timestamptz NOT NULL, data jsonb NOT NULL,"
        " received_at timestamptz NOT NULL DEFAULT now())"
    )


async def _release(pool: asyncpg.Pool, conn: asyncpg.Connection) -> None:
    with contextlib.suppress(Exception):  # a connection the server cut is simply dropped
        await pool.release(conn)


class TableSink:
    """Idempotent upserts into one table."""

    def __init__(self, options: TableOptions, context: ConnectorContext) -> None:
        self.options = options
        self._context = context
        self._table = qualified(options.schema, options.table)
        self._pool: asyncpg.Pool | None = None
        self._columns: set[str] = set()
        self._statements: dict[tuple[str, ...], str] = {}

    async def start(self) -> None:
        """Connect and verify (or create) the table; idempotent."""
        if self._pool is not None:
            return
        pool = await open_pool(self.options.dsn.reveal())
        try:
            async with pool.acquire() as conn:
                self._columns = await self._verify(conn)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def stop(self) -> None:
        """Close the pool; idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _verify(self, conn: asyncpg.Connection) -> set[str]:
        opts = self.options
        if opts.create:
            await conn.execute(landing_table_ddl(opts.schema, opts.table, opts.key_column))
        columns = set(await table_columns(conn, opts.schema, opts.table))
        if not columns:
            raise ConfigError(
                f"table {opts.schema}.{opts.table} does not exist",
                hint="Create it, or set create = true for a landing table of whole events.",
            )
        if opts.key_column not in columns:
            raise ConfigError(f"table {opts.schema}.{opts.table} has no column {opts.key_column}")
        unique = await conn.fetchval(
            "SELECT count(*) FROM pg_index i JOIN pg_attribute a"
            " ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indrelid = $1::regclass AND i.indisunique AND i.indnatts = 1"
            " AND a.attname = $2",
            self._table,
            opts.key_column,
        )
        if not unique:
            # ON CONFLICT needs it, and without it a re-delivered event would add a row.
            raise ConfigError(
                f"{opts.schema}.{opts.table}.{opts.key_column} needs a unique index",
                hint=f'CREATE UNIQUE INDEX ON {self._table} ("{opts.key_column}")',
            )
        return columns

    async def check(self) -> Check:
        """Connect and verify the table without writing."""
        dsn = self.options.dsn.reveal()
        conn = await connect(dsn)
        try:
            if self.options.create:
                exists = await conn.fetchval("SELECT to_regclass($1)", self._table)
                if exists is None:
                    return Check(f"{self._table} will be created on first run")
            columns = await self._verify(conn)
            count = await conn.fetchval(f"SELECT count(*) FROM {self._table}")
        finally:
            await conn.close()
        return Check(f"{self._table}: {len(columns)} columns, {count} row(s)")

    def _row(self, record: Record) -> dict[str, Any]:
        row = dict(record.value)
        row[self.options.key_column] = record.id or record.key
        return row

    def _statement(self, columns: tuple[str, ...]) -> str:
        statement = self._statements.get(columns)
        if statement is None:
            key = self.options.key_column
            names = ", ".join(f'"{c}"' for c in columns)
            params = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
            updates = ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in columns if c != key)
            action = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
            statement = (
                f"INSERT INTO {self._table} ({names}) VALUES ({params})"
                f' ON CONFLICT ("{key}") {action}'
            )
            self._statements[columns] = statement
        return statement

    async def send(self, records: Sequence[Record]) -> list[Outcome]:
        """Upsert every record; one transaction per batch, row by row if the batch is refused."""
        pool = self._pool
        if pool is None:
            return [Outcome.unavailable("the table sink is not started") for _ in records]
        outcomes: list[Outcome | None] = [None] * len(records)
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, record in enumerate(records):
            row = self._row(record)
            unknown = sorted(set(row) - self._columns)
            if unknown:
                outcomes[index] = Outcome.reject(
                    f"{self._table} has no column(s) {', '.join(unknown)}"
                )
                continue
            groups.setdefault(tuple(sorted(row)), []).append(index)
        try:
            conn = await pool.acquire()
        except Exception as exc:
            # Whatever keeps us from getting a connection (server gone, database refusing
            # logins, too many clients) is the database being unavailable, not the records.
            detail = f"PostgreSQL is unreachable: {reason(exc)}"
            return [o if o is not None else Outcome.unavailable(detail) for o in outcomes]
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.push_async_callback(_release, pool, conn)
                try:
                    async with conn.transaction():
                        for columns, indexes in groups.items():
                            await conn.executemany(
                                self._statement(columns),
                                [self._values(records[i], columns) for i in indexes],
                            )
                except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
                    if is_unavailable(exc):
                        raise
                    log.info("table.batch.refused", table=self._table, error=str(exc))
                    for columns, indexes in groups.items():
                        for i in indexes:
                            outcomes[i] = await self._one(conn, records[i], columns)
                else:
                    for indexes in groups.values():
                        for i in indexes:
                            outcomes[i] = Outcome.done(
                                event_id=records[i].id or "", ref=self._table
                            )
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            detail = f"PostgreSQL is unreachable: {reason(exc)}"
            return [o if o is not None else Outcome.unavailable(detail) for o in outcomes]
        return [o if o is not None else Outcome.retry("not written") for o in outcomes]

    def _values(self, record: Record, columns: tuple[str, ...]) -> list[Any]:
        row = self._row(record)
        return [row[c] for c in columns]

    async def _one(
        self, conn: asyncpg.Connection, record: Record, columns: tuple[str, ...]
    ) -> Outcome:
        try:
            await conn.execute(self._statement(columns), *self._values(record, columns))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, TypeError, ValueError) as exc:
            if is_unavailable(exc):
                raise
            return Outcome.reject(f"{self._table} refused the row: {exc}")
        return Outcome.done(event_id=record.id or "", ref=self._table)
