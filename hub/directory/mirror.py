"""The directory's KV copy away from the hub: a county's mirror, read offline.

The materializer writes every entry to the bucket `govhub_directory` (key `entry.<code>`) in
the hub's JetStream domain. A county's leaf node keeps a *mirror* of that bucket under the
same name in its own domain (`mirror_config`), so `govhub dir search --offline` answers from
the county's own server while the uplink is down and catches up by itself when it returns.
The federation module creates the mirrors; the names here are the contract.
"""

from __future__ import annotations

import json
from typing import Any

import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js.api import (
    DiscardPolicy,
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
)

from hub.bus import jetstream
from hub.directory.materializer import ENTRY_KEY_PREFIX
from hub.errors import DirectoryError
from hub.topology import DIRECTORY_BUCKET, HUB_DOMAIN

DIRECTORY_STREAM = f"KV_{DIRECTORY_BUCKET}"
"""The stream behind the bucket (and the name of every mirror of it)."""
KV_HISTORY = 16


def mirror_config(
    *, source_domain: str | None = HUB_DOMAIN, name: str = DIRECTORY_STREAM
) -> StreamConfig:
    """The stream a county creates in its own domain to mirror the hub's directory bucket.

    Keeping the bucket's name (`name` default) lets KV clients on the county's server open it
    as `govhub_directory`; the mirror reads the hub's stream through the leaf node's
    JetStream API prefix of `source_domain`.
    """
    external = ExternalStream(api=f"$JS.{source_domain}.API") if source_domain else None
    return StreamConfig(
        name=name,
        description="Mirror of the hub's resource directory (offline search)",
        mirror=StreamSource(name=DIRECTORY_STREAM, external=external),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msgs_per_subject=KV_HISTORY,
        allow_direct=True,
        mirror_direct=True,
        num_replicas=1,
    )


async def kv_documents(
    nc: NatsClient, *, domain: str | None = None, bucket: str = DIRECTORY_BUCKET
) -> list[dict[str, Any]]:
    """Every entry document of the directory bucket (or its local mirror) as JSON."""
    try:
        kv = await jetstream(nc, domain=domain).key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        raise DirectoryError(
            f"this server has no directory copy {bucket!r}",
            hint="The hub's directory service creates it; a county mirrors it (docs/directory.md).",
        ) from None
    watcher = await kv.watch(f"{ENTRY_KEY_PREFIX}>", ignore_deletes=True)
    docs = []
    try:
        async for item in watcher:
            if item is None:
                break
            if item.value:
                docs.append(json.loads(item.value))
    finally:
        await watcher.stop()
    return docs


async def stream_last_seq(nc: NatsClient, stream: str) -> int:
    """The last sequence of a stream (how far a mirror has come)."""
    info = await jetstream(nc).stream_info(stream)
    return int(info.state.last_seq or 0)
