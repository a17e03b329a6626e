"""PostgreSQL access: connection pools and the migrations in ops/migrations, applied once."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import asyncpg

from hub.errors import ServerUnavailable
from hub.userfiles import why
from ops import MIGRATIONS_DIR

# Any constant works; it only has to be the same for every govhub process on a database.
_MIGRATION_LOCK = 0x60_76_68_75_62_00_00_01


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 4) -> asyncpg.Pool:
    """A connection pool; an unreachable server is a ServerUnavailable with the reason."""
    try:
        pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, timeout=10)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise ServerUnavailable(
            f"cannot reach PostgreSQL at {redact(dsn)}: {reason(exc)}",
            hint="Start the embedded servers with `govhub up` or check GOVHUB_PG_DSN.",
        ) from exc
    assert pool is not None
    return pool


def reason(exc: BaseException) -> str:
    """Why PostgreSQL could not be used, in words: `connection refused`, not `[Errno 111] ...`.

    The server's own refusals (`password authentication failed for user "x"`, `database "x"
    does not exist`) are sentences already and pass through.
    """
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, socket.gaierror):
        return "the host name does not resolve to an address"
    if isinstance(exc, OSError):
        return why(exc)
    return str(exc) or "the connection failed"


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", dsn)


def migrations(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, str]]:
    """(version, name, sql) of every `NNN_name.sql`, in order."""
    found = []
    for path in sorted(directory.glob("*.sql")):
        version = int(path.name.split("_", 1)[0])
        found.append((version, path.stem, path.read_text(encoding="utf-8")))
    return found


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply pending migrations under an advisory lock; returns the names applied."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version int PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            for version, name, sql in migrations():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version,
                        name,
                    )
                applied.append(name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
