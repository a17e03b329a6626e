"""Turning decoded Avro values and govhub objects into JSON a person or a script can read."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import json
import uuid
from pathlib import Path
from typing import Any

from hub.timetext import rfc3339


def to_jsonable(value: Any) -> Any:
    """Recursively convert values JSON cannot hold: times to RFC 3339, bytes to base64."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID | Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(dataclasses.asdict(value))
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """One JSON document, UTF-8 text kept readable (Chinese is not escaped)."""
    return json.dumps(to_jsonable(value), ensure_ascii=False, indent=indent)
