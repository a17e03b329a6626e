"""Folder connector: a drop folder office staff put files into, and an inbox folder they read.

```
<path>/drop/      staff put files here (with an optional sidecar `<file>.toml`)
<path>/sending/   claimed files while they are being sent (resumed after a crash)
<path>/sent/      sent files, each with `<file>.result.txt` (what it became)
<path>/failed/    refused files, each with `<file>.reason.txt` (why, for a person)
<path>/inbox/     received files (sink), each written atomically with `<file>.toml` beside it
```

A file is picked up only once it is complete: its size and modification time must stay the
same for `settle_seconds` (a copy over the network or a scanner still writing keeps changing
them), and names ending in `.part`, `.tmp` or `.crdownload`, hidden files and Office lock
files (`~$…`) are never picked up, so a program can write `name.part` and rename it when done.
The folder is scanned every `scan_interval` seconds: file shares (SMB, NFS) do not deliver
change notifications reliably, so a scan is the one mechanism that works everywhere.

The connector knows nothing of documents: a record is the file (name, size, SHA-256, time)
and its sidecar as a table; the adapter decides what they mean.
"""

from __future__ import annotations

from typing import Any

from connectors.folder.drop import DropFolderSource, DropOptions
from connectors.folder.inbox import InboxFolderSink, InboxOptions
from hub.plugin import ConnectorContext, Sink, Source

__all__ = ["CONNECTOR", "DropFolderSource", "DropOptions", "InboxFolderSink", "InboxOptions"]


class FolderConnector:
    """The `folder` entry point."""

    name = "folder"
    source_options = DropOptions
    sink_options = InboxOptions

    def source(self, options: Any, context: ConnectorContext) -> Source:
        """A drop-folder source."""
        return DropFolderSource(options, context)

    def sink(self, options: Any, context: ConnectorContext) -> Sink:
        """An inbox-folder sink."""
        return InboxFolderSink(options, context)


CONNECTOR = FolderConnector()
