"""The C2SP tlog-tiles layout: paths, which tiles exist, tile bytes and entry bundles."""

from __future__ import annotations

import pytest

from hub import merkle
from hub.audit import tiles
from hub.audit.tiles import ENTRIES, Tile, TileError
from hub.merkle import CompactRange


def stored_tree(size: int) -> tuple[dict[tuple[int, int], bytes], list[bytes]]:
    entries = [b"entry %d" % i for i in range(size)]
    store: dict[tuple[int, int], bytes] = {}
    frontier = CompactRange()
    for e in entries:
        for level, index, h in frontier.append(merkle.leaf_hash(e)):
            store[level, index] = h
    return store, entries


def test_tile_index_is_split_into_x_prefixed_three_digit_groups() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.encode_index(0) == "000"
    assert tiles.encode_index(999) == "999"
    assert tiles.encode_index(1000) == "x001/000"


def test_tile_paths_follow_the_spec_for_full_partial_and_entry_tiles() -> None:
    assert Tile(0, 1234067).path() == "tile/0/x001/x234/067"
    assert Tile(1, 5, 17).path() == "tile/1/005.p/17"
    assert Tile(ENTRIES, 1000, 3).path() == "tile/entries/x001/000.p/3"


def test_tile_paths_round_trip_through_the_parser() -> None:
    for tile in [Tile(0, 0), Tile(3, 123456789, 255), Tile(ENTRIES, 7), Tile(63, 1, 1)]:
        assert tiles.parse_tile_path(tile.path()) == tile


@pytest.mark.parametrize(
    "path",
    [
        "tile/01/000",  # leading zero in the level
        "tile/64/000",  # level above 63
        "tile/0/1",  # index group not three digits
        "tile/0/x000/001",  # redundant leading group
        "tile/0/001/002",  # non-final group without x
        "tile/0/x001",  # final group with x
        "tile/0/000.p/0",  # empty partial tile
        "tile/0/000.p/256",  # a full tile spelled as partial
        "tile/0/000.p/017",  # leading zero in the width
        "tile/data/000",  # unknown tile kind
        "tiles/0/000",
        "tile/0/-01",
        "tile/0",
    ],
)
def test_non_canonical_or_invalid_tile_paths_are_rejected(path: str) -> None:
    with pytest.raises(TileError):
        tiles.parse_tile_path(path)


def test_tree_of_70000_has_the_tiles_the_spec_lists() -> None:
    got = [(t.level, t.index, t.width) for t in tiles.tiles_for_size(70_000)]
    level0 = [g for g in got if g[0] == 0]
    assert len(level0) == 274 and level0[-1] == (0, 273, 112)
    assert all(w == 256 for _, _, w in level0[:-1])
    assert [g for g in got if g[0] == 1] == [(1, 0, 256), (1, 1, 17)]
    assert [g for g in got if g[0] == 2] == [(2, 0, 1)]


def test_tree_of_256_has_one_full_tile_and_a_width_one_tile_above() -> None:
    assert [t.path() for t in tiles.tiles_for_size(256)] == ["tile/0/000", "tile/1/000.p/1"]
    assert next(t.path() for t in tiles.tiles_for_size(256, entries=True)) == "tile/entries/000"
    assert tiles.tiles_for_size(0) == []


def test_new_tiles_are_exactly_those_whose_content_changes() -> None:
    for old, new in [(0, 1), (100, 101), (255, 257), (1000, 70_000), (65_535, 65_536)]:
        before = {(t.level, t.index): t.width for t in tiles.tiles_for_size(old)}
        after = {(t.level, t.index): t.width for t in tiles.tiles_for_size(new)}
        changed = {k for k, w in after.items() if before.get(k) != w}
        assert {(t.level, t.index) for t in tiles.new_tiles(old, new)} == changed
    assert tiles.new_tiles(5, 5) == []


def test_tile_bytes_hold_the_merkle_tree_hashes_the_spec_defines() -> None:
    size = 256 * 3 + 5
    store, entries = stored_tree(size)
    hashes = [merkle.leaf_hash(e) for e in entries]
    for tile in tiles.tiles_for_size(size):
        data = tiles.tile_bytes(tile, lambda lv, ix: store[lv, ix])
        assert len(data) == 32 * tile.width
        for i, h in enumerate(tiles.split_tile(data, tile)):
            lo = (tile.index * 256 + i) * 256**tile.level
            want = merkle.root_from_leaf_hashes(hashes[lo : lo + 256**tile.level])
            assert h == want


def test_any_complete_subtree_hash_can_be_read_back_from_tiles() -> None:
    size = 256 * 2 + 77
    store, _ = stored_tree(size)
    for (level, index), want in store.items():
        tile, first, count = tiles.tile_for_node(level, index)
        full = Tile(tile.level, tile.index, min(256, (size >> (8 * tile.level)) - 256 * tile.index))
        data = tiles.tile_bytes(full, lambda lv, ix: store[lv, ix])
        assert tiles.hash_in_tile(data, first, count) == want


def test_entry_bundles_prefix_each_entry_with_a_big_endian_uint16_length() -> None:
    bundle = tiles.encode_entry_bundle([b"", b"ab", b"x" * 300])
    assert bundle[:4] == b"\x00\x00\x00\x02" and bundle[6:8] == b"\x01\x2c"
    assert tiles.decode_entry_bundle(bundle) == [b"", b"ab", b"x" * 300]


def test_entry_bundle_entries_hash_to_the_level_zero_tile() -> None:
    store, entries = stored_tree(300)
    bundle = tiles.encode_entry_bundle(entries[256:])
    tile = Tile(0, 1, 44)
    leaf_tile = tiles.split_tile(tiles.tile_bytes(tile, lambda lv, ix: store[lv, ix]), tile)
    assert [merkle.leaf_hash(e) for e in tiles.decode_entry_bundle(bundle)] == leaf_tile


def test_truncated_or_oversized_entry_bundles_are_rejected() -> None:
    bundle = tiles.encode_entry_bundle([b"hello", b"world"])
    for cut in (1, 3, len(bundle) - 1):
        with pytest.raises(TileError, match="truncated"):
            tiles.decode_entry_bundle(bundle[:cut])
    with pytest.raises(TileError, match="65535"):
        tiles.encode_entry_bundle([b"x" * 65_536])
    with pytest.raises(TileError, match="at most 256"):
        tiles.encode_entry_bundle([b""] * 257)


def test_a_tile_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(TileError, match="should be 64 bytes"):
        tiles.split_tile(b"\x00" * 63, Tile(0, 0, 2))
