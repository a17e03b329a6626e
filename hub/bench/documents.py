"""`govhub bench documents`: large-file and many-document throughput next to the raw client.

The large file is sent and fetched by govhub and put and got by nats-py's own object store,
each side in its own process so its peak RSS is its own. Then many small documents go to
several recipients each, are delivered by the recipient agent with signed receipts, and the
tracker materialises every state; the raw object store moves the same bytes for comparison.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nats
from nats.js.api import ObjectStoreConfig, StorageType

from hub.bench.measure import machine, print_results
from hub.display import console
from hub.errors import InputError, ServiceError
from hub.exchange.agent import RecipientAgent
from hub.exchange.send import Sender, SendRequest
from hub.exchange.tracker import ExchangeTracker
from hub.runtime import Hub

SENDER = "pref.office"
# Not among the small documents' recipients, so their agent never fetches the large file.
LARGE_RECIPIENT = "pref.finance"
RSS_TARGET_MB = 256
SMALL_TARGET_S = 60.0
RAW_GETS = 900
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$", re.IGNORECASE)
_FACTOR = {
    "b": 1,
    "k": 1024,
    "kb": 1000,
    "kib": 1024,
    "m": 1 << 20,
    "mb": 10**6,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 10**9,
    "gib": 1 << 30,
}


def parse_size(text: str) -> int:
    """`1GiB`, `64MiB`, `500MB` or a byte count."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise InputError(f"--size {text!r}: use a byte count or 64MiB, 1GiB, 500MB")
    return int(float(match.group(1)) * _FACTOR[(match.group(2) or "b").lower()])


def _write_random(path: Path, size: int) -> None:
    block = 4 << 20
    with path.open("wb") as handle:
        left = size
        while left > 0:
            handle.write(os.urandom(min(block, left)))
            left -= block


async def _child(op: str, hub: Hub, **options: str) -> dict[str, Any]:
    args = [
        sys.executable,
        "-m",
        "hub.bench.documents_proc",
        op,
        "--nats",
        hub.nats_url,
        "--pg",
        hub.pg_dsn,
        "--home",
        str(hub.settings.home.root),
    ]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise ServiceError(f"benchmark step {op} failed: {err.decode(errors='replace')[-500:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def _mb_s(size: int, seconds: float) -> float:
    return round(size / (1 << 20) / max(seconds, 1e-9), 1)


async def bench_large(
    hub: Hub, work: Path, size: int, classification: str = "internal"
) -> dict[str, Any]:
    """One file of `size` bytes: govhub send/fetch vs raw object-store put/get."""
    source = work / "large.bin"
    await asyncio.to_thread(_write_random, source, size)
    raw_put = await _child("raw-put", hub, file=str(source))
    raw_get = await _child("raw-get", hub, out=str(work / "raw.out"))
    (work / "raw.out").unlink(missing_ok=True)
    sent = await _child(
        "send",
        hub,
        file=str(source),
        as_id=SENDER,
        to=LARGE_RECIPIENT,
        classification=classification,
    )
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    await tracker.catch_up(fire_timers=False)
    await tracker.stop()
    fetched = await _child(
        "fetch", hub, doc=sent["doc_id"], as_id=LARGE_RECIPIENT, out=str(work / "govhub.out")
    )
    (work / "govhub.out").unlink(missing_ok=True)
    source.unlink(missing_ok=True)
    ours = {
        "send_mb_s": _mb_s(size, sent["seconds"]),
        "fetch_mb_s": _mb_s(size, fetched["seconds"]),
        "send_s": round(sent["seconds"], 2),
        "fetch_s": round(fetched["seconds"], 2),
        "send_peak_rss_mb": sent["peak_rss_mb"],
        "fetch_peak_rss_mb": fetched["peak_rss_mb"],
    }
    raw = {
        "put_mb_s": _mb_s(size, raw_put["seconds"]),
        "get_mb_s": _mb_s(size, raw_get["seconds"]),
        "put_s": round(raw_put["seconds"], 2),
        "get_s": round(raw_get["seconds"], 2),
        "put_peak_rss_mb": raw_put["peak_rss_mb"],
        "get_peak_rss_mb": raw_get["peak_rss_mb"],
    }
    return {
        "bytes": size,
        "classification": classification,
        "govhub": ours,
        "raw_object_store": raw,
        "ratio_send": round(ours["send_mb_s"] / max(raw["put_mb_s"], 1e-9), 2),
        "ratio_fetch": round(ours["fetch_mb_s"] / max(raw["get_mb_s"], 1e-9), 2),
    }


async def bench_small(
    hub: Hub, work: Path, count: int, recipients: int, size: int
) -> dict[str, Any]:
    """`count` documents to `recipients` recipients each, delivered with signed receipts."""
    offices = [
        p.id
        for p in hub.participants.all()
        if p.unit != hub.scenario.hub_unit
        and p.unit != hub.scenario.upstream_unit
        and p.status == "active"
    ][:recipients]
    if len(offices) < recipients:
        raise InputError(f"the scenario has only {len(offices)} county participants")
    folder = work / "small"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"doc-{i:05d}.txt"
        path.write_bytes(f"第{i}号通知\n".encode() + os.urandom(size))
        paths.append(path)
    total_bytes = sum(p.stat().st_size for p in paths)
    raw = await _raw_small(hub, paths, recipients)
    sender = Sender(hub.settings, hub.trust, hub.bus, hub.signer, window=64)
    limit = asyncio.Semaphore(32)

    async def one(path: Path) -> str:
        async with limit:
            result = await sender.send(
                SendRequest(sender=SENDER, recipients=tuple(offices), path=path, title=path.stem)
            )
            return result.doc_id

    started = time.perf_counter()
    doc_ids = await asyncio.gather(*(one(p) for p in paths))
    sent_s = time.perf_counter() - started
    delivered = await RecipientAgent(
        hub.pool, hub.settings, hub.trust, hub.bus, hub.signer, offices, concurrency=32
    ).deliver_pending()
    deliver_s = time.perf_counter() - started - sent_s
    tracker = ExchangeTracker(hub.pool, hub.trust, hub.bus, hub.signer)
    await tracker.catch_up(fire_timers=False)
    await tracker.stop()
    total_s = time.perf_counter() - started
    states = await hub.pool.fetchval(
        "SELECT count(*) FROM doc_recipients WHERE state = 'delivered' AND doc_id = ANY($1)",
        list(doc_ids),
    )
    shutil.rmtree(folder, ignore_errors=True)
    return {
        "documents": count,
        "recipients_each": recipients,
        "bytes_each": size,
        "govhub": {
            "send_s": round(sent_s, 2),
            "send_docs_per_s": round(count / sent_s, 1),
            "deliver_and_receipt_s": round(deliver_s, 2),
            "track_s": round(total_s - sent_s - deliver_s, 2),
            "total_s": round(total_s, 2),
            "deliveries": len(delivered),
            "delivered_states": int(states),
            "send_mb_s": _mb_s(total_bytes, sent_s),
        },
        "raw_object_store": raw,
    }


async def _raw_small(hub: Hub, paths: list[Path], recipients: int) -> dict[str, Any]:
    nc = await nats.connect(hub.nats_url)
    try:
        js = nc.jetstream(timeout=30.0)
        obs = await js.create_object_store(
            "bench_raw_small", config=ObjectStoreConfig(storage=StorageType.FILE)
        )
        limit = asyncio.Semaphore(32)

        async def put(path: Path) -> None:
            async with limit:
                await obs.put(path.name, await asyncio.to_thread(path.read_bytes))

        # nats-py's get leaves its ordered consumer on the server until it goes inactive, and
        # the server refuses new ones past 1,000: the raw reads are measured on 900 gets.
        wanted = [p for p in paths for _ in range(recipients)][:RAW_GETS]

        async def get(path: Path) -> None:
            async with limit:
                await obs.get(path.name)

        started = time.perf_counter()
        await asyncio.gather(*(put(p) for p in paths))
        put_s = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(get(p) for p in wanted))
        get_s = time.perf_counter() - started
        await js.delete_object_store("bench_raw_small")
    finally:
        await nc.close()
    return {
        "put_s": round(put_s, 2),
        "put_docs_per_s": round(len(paths) / put_s, 1),
        "gets": len(wanted),
        "get_s": round(get_s, 2),
        "get_per_s": round(len(wanted) / get_s, 1),
    }


async def bench_documents(
    hub: Hub,
    *,
    size: int,
    small: int,
    recipients: int,
    small_size: int,
    classification: str = "internal",
) -> dict[str, Any]:
    """Run both parts and check the targets."""
    work = hub.settings.home.root / "bench-documents"
    work.mkdir(parents=True, exist_ok=True)
    try:
        large = await bench_large(hub, work, size, classification) if size > 0 else None
        many = await bench_small(hub, work, small, recipients, small_size) if small > 0 else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    targets: dict[str, bool] = {}
    if large is not None:
        ours = large["govhub"]
        targets["send_at_least_raw"] = large["ratio_send"] >= 1.0
        targets["fetch_at_least_raw"] = large["ratio_fetch"] >= 1.0
        targets[f"peak_rss_under_{RSS_TARGET_MB}_mb"] = (
            max(ours["send_peak_rss_mb"], ours["fetch_peak_rss_mb"]) < RSS_TARGET_MB
        )
    if many is not None:
        targets[f"small_under_{int(SMALL_TARGET_S)}_s"] = many["govhub"]["total_s"] < SMALL_TARGET_S
    return {"machine": machine(), "large": large, "small": many, "targets": targets}


def render(result: dict[str, Any]) -> None:
    large, many = result["large"], result["small"]
    if large is not None:
        g, r = large["govhub"], large["raw_object_store"]
        size_mb = large["bytes"] / (1 << 20)
        ratio = f"send {large['ratio_send']}, fetch {large['ratio_fetch']}"
        print_results(
            console,
            f"bench documents: one {size_mb:,.0f} MiB {large['classification']} file",
            [
                ("send / put MB/s", f"{g['send_mb_s']:,}", f"{r['put_mb_s']:,}"),
                ("fetch / get MB/s", f"{g['fetch_mb_s']:,}", f"{r['get_mb_s']:,}"),
                ("sender peak RSS MB", f"{g['send_peak_rss_mb']}", f"{r['put_peak_rss_mb']}"),
                ("receiver peak RSS MB", f"{g['fetch_peak_rss_mb']}", f"{r['get_peak_rss_mb']}"),
                ("ratio govhub / raw", ratio, ""),
            ],
        )
    if many is not None:
        gs, rs = many["govhub"], many["raw_object_store"]
        print_results(
            console,
            f"{many['documents']:,} documents × {many['recipients_each']} recipients",
            [
                ("send docs/s", f"{gs['send_docs_per_s']:,}", f"{rs['put_docs_per_s']:,}"),
                (
                    "deliveries (with receipts)",
                    f"{gs['deliveries']:,} in {gs['deliver_and_receipt_s']} s",
                    f"{rs['get_per_s']:,} gets/s",
                ),
                ("all states delivered", f"{gs['delivered_states']:,} after {gs['total_s']} s", ""),
            ],
        )
    console.print(
        "targets: "
        + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in result["targets"].items())
    )
