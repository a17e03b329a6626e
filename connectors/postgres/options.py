"""Options of the postgres connector: the outbox table a source reads and the table a sink
upserts into; every name is a plain identifier, checked when the adapter file is read."""

from __future__ import annotations

import re
from dataclasses import dataclass

from hub.plugin import Secret

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")  # fullmatch: `$` would let a final "\n" in


def check_identifier(value: str, what: str) -> str:
    """A plain SQL identifier (letters, digits, `_`); anything else is refused at config time."""
    if not _IDENT.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be letters, digits and '_' (a plain identifier)")
    return value


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
