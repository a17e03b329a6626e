"""The tlog-tiles HTTP API of `govhub serve`, read by a client built only from the C2SP specs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from hub.audit.service import AuditLog
from hub.ports import free_port
from hub.runtime import Hub
from hub.serve import serve
from tests import rfc9162

NOTICE = "gov.common.v1.Notice"


@dataclass
class Served:
    url: str
    vkey: str


@pytest.fixture
async def served(hub: Hub) -> AsyncIterator[Served]:
    """`govhub serve --only audit` in this process, with 600 notices logged and checkpointed."""
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(serve(hub.parts, only=["audit"], port=port, stop=stop))
    envs = [hub.seal("akto.civil", NOTICE, {"title": f"n{i}", "body": "b"}) for i in range(600)]
    await hub.publisher.publish_many(envs)
    target = (await hub.nc.jetstream().stream_info("GOVHUB")).state.messages
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(600):
            async with session.get(f"{url}/checkpoint") as r:
                if r.status == 200 and f"\n{target}\n" in await r.text():
                    break
            await asyncio.sleep(0.1)
    vkey = (
        AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus, create_keys=False)
        .ring.signers()[0]
        .verifier.vkey()
    )
    try:
        yield Served(url, vkey)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class TileClient:
    """Fetches tiles and derives any subtree hash from them, as tlog-tiles describes."""

    def __init__(self, session: aiohttp.ClientSession, url: str, size: int) -> None:
        self.session, self.url, self.size = session, url, size
        self.cache: dict[str, bytes] = {}

    @staticmethod
    def index_path(n: int) -> str:
        parts = [f"{n % 1000:03d}"]
        n //= 1000
        while n:
            parts.insert(0, f"x{n % 1000:03d}")
            n //= 1000
        return "/".join(parts)

    async def get(self, level: str, n: int, width: int) -> bytes:
        path = f"tile/{level}/{self.index_path(n)}" + (f".p/{width}" if width < 256 else "")
        if path not in self.cache:
            async with self.session.get(f"{self.url}/{path}") as r:
                assert r.status == 200, path
                self.cache[path] = await r.read()
        return self.cache[path]

    async def hash(self, level: int, index: int) -> bytes:
        """MTH of the 2**level leaves from index * 2**level, from the tile holding them."""
        tile_level, height = divmod(level, 8)
        count = self.size >> (8 * tile_level)  # hashes that exist at this tile level
        first = index << height
        tile_n = first // 256
        width = min(256, count - tile_n * 256)
        data = await self.get(str(tile_level), tile_n, width)
        hashes = [data[i : i + 32] for i in range(0, len(data), 32)]
        run = hashes[first % 256 : first % 256 + (1 << height)]
        while len(run) > 1:
            run = [rfc9162.node(run[i], run[i + 1]) for i in range(0, len(run), 2)]
        return run[0]

    async def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for the ranges RFC 6962 proofs use."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return await self.hash(n.bit_length() - 1, lo // n)
        k = rfc9162.split(n)
        return rfc9162.node(await self.subtree(lo, lo + k), await self.subtree(lo + k, hi))

    async def path(self, m: int, lo: int, hi: int) -> list[bytes]:
        if hi - lo == 1:
            return []
        k = rfc9162.split(hi - lo)
        if m < lo + k:
            return [*await self.path(m, lo, lo + k), await self.subtree(lo + k, hi)]
        return [*await self.path(m, lo + k, hi), await self.subtree(lo, lo + k)]

    async def entry(self, index: int) -> bytes:
        n = index // 256
        bundle = await self.get("entries", n, min(256, self.size - n * 256))
        entries, pos = [], 0
        while pos < len(bundle):
            length = int.from_bytes(bundle[pos : pos + 2], "big")
            entries.append(bundle[pos + 2 : pos + 2 + length])
            pos += 2 + length
        return entries[index % 256]


async def test_a_client_built_from_tiles_alone_verifies_inclusion_of_entries(
    served: Served,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.url}/checkpoint") as r:
            checkpoint = await r.text()
        _, size, root, cosigners = rfc9162.open_checkpoint(checkpoint, served.vkey)
        assert size > 512 and len(cosigners) >= 3
        client = TileClient(session, served.url, size)
        for index in (0, 255, 256, 511, 512, size - 1):
            leaf = await client.entry(index)
            assert json.loads(leaf)["v"] == 1
            proof = await client.path(index, 0, size)
            assert rfc9162.verify_inclusion(rfc9162.leaf(leaf), index, size, proof, root), index
        assert (
            await client.subtree(0, size)
            == root
            == rfc9162.mth([await client.entry(i) for i in range(size)])
        )


async def test_full_tiles_are_immutable_and_the_checkpoint_is_not_cached(
    served: Served,
) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.url}/tile/0/000") as r:
            assert r.status == 200 and len(await r.read()) == 8192
            assert "immutable" in r.headers["Cache-Control"]
            assert r.headers["Content-Type"] == "application/octet-stream"
        async with session.get(f"{served.url}/tile/0/000.p/10") as r:
            assert r.status == 200 and len(await r.read()) == 320
            assert "immutable" not in r.headers["Cache-Control"]
        async with session.get(f"{served.url}/checkpoint") as r:
            assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert "no-cache" in r.headers["Cache-Control"]


@pytest.mark.parametrize(
    "path",
    ["tile/0/999", "tile/0/0", "tile/0/000.p/256", "tile/entries/x001/000", "tile/x/000", "tile"],
)
async def test_tiles_beyond_the_tree_or_in_non_canonical_form_are_404(
    served: Served, path: str
) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{served.url}/{path}") as r:
        assert r.status == 404
