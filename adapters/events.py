"""Generic events: records that already are hub events, for a department that needs no mapping.

`to_hub`: the record's value is the Avro record itself and its kind the schema's full name,
which is what a fresh outbox table gives when the application writes
`type = 'gov.common.v1.Notice'` and the record as `payload`; a webhook or folder record names
its schema with the `schema` option instead. `from_hub`: each event lands as one row of a
landing table (event id, source, type, subject, time, data as JSON), which the postgres sink
creates with `create = true`, or as one JSON document for a REST API or a folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hub.plugin import Adapter, AdapterContext, Record, to_event, to_jsonable, to_row


@dataclass(frozen=True, kw_only=True)
class EventsOptions:
    """`[adapters.options]` of the events adapter."""

    schema: str = ""
    """The schema every record is written with; empty: the record's own kind (outbox `type`)."""


def events_to_hub(record: Record, ctx: AdapterContext) -> Record:
    """The payload as the event, with the configured schema or the record's own type."""
    options: EventsOptions = ctx.options
    schema = options.schema or record.kind
    if not schema:
        raise ValueError("the record names no schema; set options.schema")
    value = record.value.get("payload", record.value) if record.kind else record.value
    if not isinstance(value, Mapping):
        raise ValueError("the payload is not a JSON object")
    return to_event(record, schema, value)


def events_from_hub(event: Record, ctx: AdapterContext) -> Record:
    """One landing row per event."""
    row = {
        "source": event.headers.get("source", ""),
        "type": event.kind,
        "subject": event.subject or "",
        "time": event.time,
        "data": to_jsonable(event.value),
    }
    return to_row(event, row)


ADAPTER = Adapter(
    name="events",
    description="Records that already are hub events (outbox type = schema name); landing rows",
    to_hub=events_to_hub,
    from_hub=events_from_hub,
    options=EventsOptions,
    subjects=(),
)
