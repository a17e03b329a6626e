"""Office documents (公文): a drop folder where staff put files to send, an inbox where they arrive.

`to_hub`: a file in `drop/` (see connectors/folder/) becomes an official document sent
through the exchange. Its sidecar `<file>.toml` says what a person would write on the
dispatch slip (发文单); everything has a default from the adapter options, so dropping a bare
file works when the office always sends to the same recipients:

```toml
title = "关于做好冬季安全生产工作的通知"     # default: the file name without its extension
to = ["akto.office", "artux.office"]        # default: options.default_to
doc_number = "克政办发〔2026〕12号"
urgency = "urgent"                          # normal | urgent | extra-urgent
classification = "internal"                 # public | internal | confidential
deadline = 2027-01-15T18:00:00+08:00        # when a processing receipt is due
```

A sidecar with an unknown key, a bad value or no recipients at all refuses the file: it moves
to `failed/` with the reason. `from_hub`: documents addressed to the office are written into
`inbox/` under their own file name, with a sidecar describing them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from hub.plugin import (
    DOCUMENT,
    Adapter,
    AdapterContext,
    Classification,
    Record,
    Urgency,
    check_participant_id,
    moment,
    safe_file_name,
)

SIDECAR_KEYS = ("title", "to", "doc_number", "urgency", "classification", "deadline")


@dataclass(frozen=True, kw_only=True)
class OfficeOptions:
    """`[adapters.options]` of the office adapter: the dispatch slip's defaults."""

    default_to: tuple[str, ...] = ()
    classification: Literal["public", "internal", "confidential"] = "internal"
    urgency: Literal["normal", "urgent", "extra-urgent"] = "normal"

    def __post_init__(self) -> None:
        for recipient in self.default_to:
            check_participant_id(recipient)


def _deadline(value: Any) -> datetime | None:
    if value is None:
        return None
    return moment(value, "deadline")


def document_to_hub(record: Record, ctx: AdapterContext) -> Record:
    """A dropped file and its sidecar → a document to send."""
    options: OfficeOptions = ctx.options or OfficeOptions()
    if "meta_error" in record.value:
        raise ValueError(record.value["meta_error"])
    meta: Mapping[str, Any] = record.value.get("meta") or {}
    unknown = sorted(set(meta) - set(SIDECAR_KEYS))
    if unknown:
        raise ValueError(
            f"the sidecar has unknown key(s) {', '.join(unknown)}; "
            f"it may contain {', '.join(SIDECAR_KEYS)}"
        )
    to = meta.get("to", options.default_to)
    recipients = [to] if isinstance(to, str) else list(to)
    if not recipients:
        raise ValueError('no recipients: add `to = ["…office"]` to the sidecar')
    for recipient in recipients:
        check_participant_id(str(recipient))
    urgency = str(meta.get("urgency", options.urgency))
    classification = str(meta.get("classification", options.classification))
    Urgency(urgency)  # refuses anything else with the list of values in the error
    Classification(classification)
    value = {
        "title": str(meta.get("title") or Path(record.value["name"]).stem),
        "recipients": [str(r) for r in recipients],
        "doc_number": str(meta.get("doc_number", "")),
        "urgency": urgency,
        "classification": classification,
        "deadline": _deadline(meta.get("deadline")),
        "file_name": record.value["name"],
        "size": record.value["size"],
        "sha256": record.value["sha256"],
    }
    return Record(
        key=record.key,
        value=value,
        kind=DOCUMENT,
        time=record.time,
        content=record.content,
        headers=record.headers,
    )


def document_from_hub(record: Record, ctx: AdapterContext) -> Record:
    """A received document → a file for the inbox, with its description as a sidecar."""
    value = record.value
    if "fetch_error" in value:
        raise ValueError(f"the document could not be fetched: {value['fetch_error']}")
    meta = {
        "title": value["title"],
        "doc_number": value["doc_number"],
        "sender": value["sender"],
        "urgency": value["urgency"],
        "classification": value["classification"],
        "deadline": value["deadline"],
        "doc_id": value["doc_id"],
        "sha256": value["sha256"],
    }
    return Record(
        key=record.key,
        id=record.id,
        value={"file_name": safe_file_name(value["file_name"]), "meta": meta},
        kind=record.kind,
        time=record.time,
        content=record.content,
        headers=record.headers,
        envelope=record.envelope,
    )


ADAPTER = Adapter(
    name="office_documents",
    description="公文 drop folder → signed documents; received documents → inbox folder",
    to_hub=document_to_hub,
    from_hub=document_from_hub,
    options=OfficeOptions,
    target="documents",
    sample={
        "name": "通知.pdf",
        "size": 1024,
        "sha256": "0" * 64,
        "meta": {"title": "关于做好冬季安全生产工作的通知", "to": ["akto.office"]},
    },
)
