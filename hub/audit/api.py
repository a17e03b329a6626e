"""The audit log's HTTP read API in the C2SP tlog-tiles layout, served by ``govhub serve``.

``GET /checkpoint`` is the latest published (witness-policy) checkpoint, not cacheable;
``GET /tile/<L>/<N>[.p/<W>]`` are hash tiles and ``GET /tile/entries/<N>[.p/<W>]`` entry bundles
(the leaf bytes), both read from PostgreSQL. A tile's content at a given width never changes, so
tiles carry long-lived cache headers (full tiles are marked immutable); anything beyond the
committed tree is 404. Any tlog-tiles client can fetch these and verify proofs itself.
"""

from __future__ import annotations

import asyncpg
from aiohttp import web

from hub.audit.reader import TileReader, entry_bundle, latest_checkpoint, tree_size
from hub.audit.tiles import ENTRIES, TILE_WIDTH, TileError, encode_entry_bundle, parse_tile_path
from hub.errors import NotInLog

FULL_TILE_CACHE = "public, max-age=31536000, immutable"
PARTIAL_TILE_CACHE = "public, max-age=86400"
CHECKPOINT_CACHE = "no-cache, max-age=0"


def routes(pool: asyncpg.Pool, prefix: str = "") -> list[web.RouteDef]:
    """The tlog-tiles routes under ``prefix`` (empty: at the root)."""

    async def checkpoint(_request: web.Request) -> web.Response:
        cp = await latest_checkpoint(pool)
        if cp is None:
            raise web.HTTPNotFound(text="no checkpoint has been published yet\n")
        return web.Response(
            text=cp.note,
            content_type="text/plain",
            charset="utf-8",
            headers={"Cache-Control": CHECKPOINT_CACHE},
        )

    async def tile(request: web.Request) -> web.StreamResponse:
        try:
            wanted = parse_tile_path("tile/" + request.match_info["path"])
        except TileError as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        if wanted.end > await tree_size(pool):
            raise web.HTTPNotFound(text=f"{wanted.path()} is beyond the committed tree\n")
        try:
            if wanted.level == ENTRIES:
                body = encode_entry_bundle(await entry_bundle(pool, wanted))
            else:
                body = await TileReader(pool).tile(wanted)
        except NotInLog as exc:
            raise web.HTTPNotFound(text=f"{exc}\n") from None
        full = wanted.width == TILE_WIDTH
        response = web.Response(
            body=body,
            content_type="application/octet-stream",
            headers={"Cache-Control": FULL_TILE_CACHE if full else PARTIAL_TILE_CACHE},
        )
        if wanted.level == ENTRIES:
            response.enable_compression()
        return response

    return [
        web.get(f"{prefix}/checkpoint", checkpoint),
        web.get(f"{prefix}/tile/{{path:.+}}", tile),
    ]
