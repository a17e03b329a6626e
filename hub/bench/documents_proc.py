"""One measured side of `govhub bench documents`, run in its own process for its peak RSS.

`python -m hub.bench.documents_proc OP --nats URL ...` prints one JSON object: the seconds the
transfer took (connection set-up excluded) and the process's peak resident set size. OPs:
`raw-put` / `raw-get` (nats-py's own object store) and `send` / `fetch` (govhub).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

RAW_BUCKET = "bench_raw_docs"


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


async def raw_put(args: argparse.Namespace) -> dict[str, Any]:
    """nats-py object store put of the file (its default 128 KiB chunks, one ack each)."""
    import nats
    from nats.js.api import ObjectStoreConfig, StorageType

    nc = await nats.connect(args.nats)
    try:
        js = nc.jetstream(timeout=30.0)
        obs = await js.create_object_store(
            RAW_BUCKET, config=ObjectStoreConfig(storage=StorageType.FILE)
        )
        started = time.perf_counter()
        # The raw client as its documentation shows it: a file object handed to put().
        with Path(args.file).open("rb") as handle:  # noqa: ASYNC230
            await obs.put(args.name, handle)
        seconds = time.perf_counter() - started
    finally:
        await nc.close()
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


async def raw_get(args: argparse.Namespace) -> dict[str, Any]:
    """nats-py object store get streamed into a file (`writeinto`, the non-quadratic path)."""
    import nats

    nc = await nats.connect(args.nats)
    try:
        js = nc.jetstream(timeout=30.0)
        obs = await js.object_store(RAW_BUCKET)
        started = time.perf_counter()
        with Path(args.out).open("wb") as handle:  # noqa: ASYNC230
            await obs.get(args.name, writeinto=handle)
        seconds = time.perf_counter() - started
    finally:
        await nc.close()
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


def _settings(args: argparse.Namespace) -> Any:
    from hub.home import Home, Settings

    return Settings(home=Home(Path(args.home)), nats_url=args.nats, pg_dsn=args.pg)


async def send(args: argparse.Namespace) -> dict[str, Any]:
    """govhub send: chunks pipelined into the sender's store, then the signed manifest."""
    from hub.exchange.model import Classification
    from hub.exchange.send import Sender, SendRequest
    from hub.runtime import open_hub

    async with open_hub(_settings(args)) as hub:
        request = SendRequest(
            sender=args.as_id,
            recipients=tuple(args.to.split(",")),
            path=Path(args.file),
            title="bench document",
            classification=Classification(args.classification),
        )
        started = time.perf_counter()
        result = await Sender(
            hub.settings, hub.trust, hub.bus, hub.signer, window=args.window
        ).send(request)
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb(), "doc_id": result.doc_id}


async def fetch(args: argparse.Namespace) -> dict[str, Any]:
    """govhub fetch: verified chunks streamed to a part file, renamed, receipt signed."""
    from hub.exchange.fetch import Fetcher
    from hub.exchange.ledger import verified_document
    from hub.runtime import open_hub

    async with open_hub(_settings(args)) as hub:
        doc = await verified_document(hub.pool, hub.trust, args.doc)
        started = time.perf_counter()
        await Fetcher(hub.trust, hub.bus, hub.signer, window=args.window).fetch(
            doc, args.as_id, Path(args.out)
        )
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "peak_rss_mb": _peak_rss_mb()}


OPS = {"raw-put": raw_put, "raw-get": raw_get, "send": send, "fetch": fetch}


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run one operation, print its JSON result."""
    parser = argparse.ArgumentParser(prog="hub.bench.documents_proc")
    parser.add_argument("op", choices=sorted(OPS))
    parser.add_argument("--nats", required=True)
    parser.add_argument("--pg", default="")
    parser.add_argument("--home", default="")
    parser.add_argument("--file", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--name", default="bench-object")
    parser.add_argument("--doc", default="")
    parser.add_argument("--as-id", dest="as_id", default="pref.office")
    parser.add_argument("--to", default="akto.office")
    parser.add_argument("--classification", default="internal")
    parser.add_argument("--window", type=int, default=16)
    args = parser.parse_args(argv)
    from hub.log import configure

    configure()
    result = asyncio.run(OPS[args.op](args))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
