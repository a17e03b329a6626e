"""The C2SP tlog-tiles layout: tile paths, which tiles a tree size has, tile and bundle bytes.

A tile at tile level ``L`` and index ``N`` is the run of up to 256 consecutive Merkle Tree Hashes
at node level ``8 * L`` (see ``hub.merkle`` for node coordinates) starting at node index
``N * 256``; a level-0 tile holds leaf hashes. Entry bundles (tile level ``ENTRIES``) hold the
leaves themselves, each prefixed by its big-endian uint16 length. Reference: c2sp.org/tlog-tiles.

This module imports only the standard library, ``hub.merkle`` and ``hub.errors`` (itself
standard library only). The offline verifier does not need it (docs/audit.md names its three
files), so its errors are part of govhub's tree: a TileError is an AuditError.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from hub.errors import AuditError
from hub.merkle import HASH_SIZE, HashAt, NodeId, node_hash

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
ENTRIES = -1
"""Tile level used for entry bundles (``tile/entries/...``), as Go's sumdb/tlog does."""
MAX_TILE_LEVEL = 63
MAX_ENTRY_SIZE = 0xFFFF

_INDEX_GROUP = re.compile(r"x[0-9]{3}")
_LAST_GROUP = re.compile(r"[0-9]{3}")
# Levels (0..63) and widths (1..256) have at most three digits, and an index below 2**64 at
# most seven groups: longer numbers are refused before int() (which refuses 4,300 digits and
# more with its own error) and before they cost anything.
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,2}")
_MAX_INDEX_GROUPS = 7


class TileError(AuditError, ValueError):
    """A tile path, tile or entry bundle is malformed or cannot exist.

    Also a ValueError, as it was before it joined the error tree: it is bad input to parse.
    """


@dataclass(frozen=True, slots=True)
class Tile:
    """One tile (``level >= 0``) or entry bundle (``level == ENTRIES``) of a given width."""

    level: int
    index: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if not (self.level == ENTRIES or 0 <= self.level <= MAX_TILE_LEVEL):
            raise TileError(f"tile level {self.level} is outside 0..63")
        if self.index < 0:
            raise TileError(f"tile index {self.index} is negative")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} is outside 1..256")

    @property
    def is_partial(self) -> bool:
        """True for a tile narrower than 256 hashes (served with a ``.p/<W>`` suffix)."""
        return self.width < TILE_WIDTH

    @property
    def node_level(self) -> int:
        """The Merkle node level of the hashes in this tile (entry bundles map to level 0)."""
        return TILE_HEIGHT * max(self.level, 0)

    @property
    def start(self) -> int:
        """Index of the first leaf this tile spans."""
        return self.index << (TILE_HEIGHT + self.node_level)

    @property
    def end(self) -> int:
        """Index one past the last leaf this tile spans at its current width."""
        return (self.index * TILE_WIDTH + self.width) << self.node_level

    def path(self) -> str:
        """Return the tile's path below the log prefix, e.g. ``tile/1/x001/234.p/17``."""
        level = "entries" if self.level == ENTRIES else str(self.level)
        suffix = f".p/{self.width}" if self.is_partial else ""
        return f"tile/{level}/{encode_index(self.index)}{suffix}"

    def node_ids(self) -> list[NodeId]:
        """Return the ``(level, index)`` coordinates of the hashes in this tile, in order."""
        first = self.index * TILE_WIDTH
        return [(self.node_level, first + i) for i in range(self.width)]


def encode_index(n: int) -> str:
    """Encode a tile index as zero-padded 3-digit path elements, all but the last ``x``-prefixed."""
    if n < 0:
        raise TileError(f"tile index {n} is negative")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_tile_path(path: str) -> Tile:
    """Parse ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]`` in canonical form only.

    Non-canonical spellings (leading zeroes, a redundant ``x000`` group, ``.p/256``) are rejected
    so that every tile has exactly one path and caches cannot be split or poisoned by aliases.
    """
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError(f"{path!r} is not a tile path")
    if parts[1] == "entries":
        level = ENTRIES
    elif _DECIMAL.fullmatch(parts[1]):
        level = int(parts[1])
    else:
        raise TileError(f"{path!r} has an invalid tile level")
    width = TILE_WIDTH
    rest = parts[2:]
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _DECIMAL.fullmatch(rest[-1]):
            raise TileError(f"{path!r} has an invalid partial-tile width")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][: -len(".p")]]
    if (
        len(rest) > _MAX_INDEX_GROUPS
        or not all(_INDEX_GROUP.fullmatch(g) for g in rest[:-1])
        or not _LAST_GROUP.fullmatch(rest[-1])
    ):
        raise TileError(f"{path!r} has an invalid tile index")
    index = int("".join(g.lstrip("x") for g in rest))
    try:
        tile = Tile(level, index, width)
    except TileError as exc:
        raise TileError(f"{path!r}: {exc}") from exc
    if tile.path() != path:
        raise TileError(f"{path!r} is not in canonical form (expected {tile.path()!r})")
    return tile


def _tiles_at_level(level: int, size: int, old_size: int = 0) -> list[Tile]:
    shift = TILE_HEIGHT * max(level, 0)
    count, old_count = size >> shift, old_size >> shift
    if count <= old_count:
        return []
    tiles = []
    for n in range(old_count // TILE_WIDTH, (count - 1) // TILE_WIDTH + 1):
        width = min(TILE_WIDTH, count - n * TILE_WIDTH)
        tiles.append(Tile(level, n, width))
    return tiles


def tiles_for_size(size: int, *, entries: bool = False) -> list[Tile]:
    """Return every tile (full and partial) a tree of ``size`` leaves has, lowest level first.

    With ``entries=True`` the entry bundles are listed first.
    """
    return new_tiles(0, size, entries=entries)


def new_tiles(old_size: int, new_size: int, *, entries: bool = False) -> list[Tile]:
    """Return the tiles that are new or wider when the tree grows from ``old_size`` to ``new_size``.

    These are exactly the resources an appender has to (re)write after integrating a batch.
    """
    if not 0 <= old_size <= new_size:
        raise TileError(f"tree size cannot go from {old_size} to {new_size}")
    tiles = _tiles_at_level(ENTRIES, new_size, old_size) if entries else []
    level = 0
    while new_size >> (TILE_HEIGHT * level):
        tiles.extend(_tiles_at_level(level, new_size, old_size))
        level += 1
    return tiles


def tile_for_node(level: int, index: int) -> tuple[Tile, int, int]:
    """Locate a complete-subtree node in the tiles: ``(tile, first, count)``.

    The node's hash is the Merkle Tree Hash of the ``count`` tile hashes starting at position
    ``first`` inside ``tile`` (see ``hash_in_tile``); ``tile.width`` is the narrowest width that
    contains them, so a partial tile of at least that width serves as well.
    """
    tile_level, height = divmod(level, TILE_HEIGHT)
    first_hash = index << height
    tile_index, first = divmod(first_hash, TILE_WIDTH)
    count = 1 << height
    return Tile(tile_level, tile_index, first + count), first, count


def hash_in_tile(data: bytes, first: int, count: int) -> bytes:
    """Return the Merkle Tree Hash of ``count`` (a power of two) tile hashes from ``first``."""
    if count & (count - 1) or first % count or len(data) < (first + count) * HASH_SIZE:
        raise TileError(f"tile of {len(data)} bytes has no aligned run of {count} at {first}")
    level = [data[(first + i) * HASH_SIZE : (first + i + 1) * HASH_SIZE] for i in range(count)]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def tile_bytes(tile: Tile, hash_at: HashAt) -> bytes:
    """Return a hash tile's content: its ``width`` hashes concatenated, read through ``hash_at``."""
    if tile.level == ENTRIES:
        raise TileError("entry bundles hold leaves, not hashes; use encode_entry_bundle")
    out = []
    for level, index in tile.node_ids():
        h = hash_at(level, index)
        if len(h) != HASH_SIZE:
            raise TileError(f"stored hash at level {level} index {index} is not 32 bytes")
        out.append(h)
    return b"".join(out)


def split_tile(data: bytes, tile: Tile) -> list[bytes]:
    """Split a hash tile's content into its hashes, checking its length matches the tile width."""
    if len(data) != tile.width * HASH_SIZE:
        raise TileError(f"{tile.path()} should be {tile.width * HASH_SIZE} bytes, got {len(data)}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_entry_bundle(entries: Iterable[bytes]) -> bytes:
    """Encode entries as a bundle: each prefixed by its big-endian uint16 length."""
    out = bytearray()
    count = 0
    for entry in entries:
        if len(entry) > MAX_ENTRY_SIZE:
            raise TileError(f"entry of {len(entry)} bytes exceeds the 65535-byte bundle limit")
        out += len(entry).to_bytes(2, "big")
        out += entry
        count += 1
    if count > TILE_WIDTH:
        raise TileError(f"an entry bundle holds at most 256 entries, not {count}")
    return bytes(out)


def decode_entry_bundle(data: bytes) -> list[bytes]:
    """Decode an entry bundle, rejecting truncation and more than 256 entries."""
    entries: list[bytes] = []
    pos = 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise TileError(f"entry bundle is truncated in the length of entry {len(entries)}")
        size = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if pos + size > len(data):
            raise TileError(f"entry bundle is truncated in entry {len(entries)}")
        entries.append(data[pos : pos + size])
        pos += size
        if len(entries) > TILE_WIDTH:
            raise TileError("entry bundle holds more than 256 entries")
    return entries
