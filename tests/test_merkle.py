"""RFC 6962 / RFC 9162 hashing, proofs from stored subtrees, verification and the compact range."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import merkle
from hub.merkle import CompactRange, ProofError

VECTORS = json.loads((Path(__file__).parent / "vectors/rfc6962_transparency_dev.json").read_text())
LEAVES = [bytes.fromhex(x) for x in VECTORS["leaves"]]
ROOTS = [bytes.fromhex(x) for x in VECTORS["roots"]]
MAX_SIZE = 70
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def naive_mth(hashes: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH, written straight from the recursive definition."""
    if not hashes:
        return merkle.EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return merkle.node_hash(naive_mth(hashes[:k]), naive_mth(hashes[k:]))


def naive_path(m: int, hashes: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(hashes) <= 1:
        return []
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    if m < k:
        return [*naive_path(m, hashes[:k]), naive_mth(hashes[k:])]
    return [*naive_path(m - k, hashes[k:]), naive_mth(hashes[:k])]


def naive_subproof(m: int, hashes: list[bytes], complete: bool) -> list[bytes]:
    """RFC 6962 §2.1.2 SUBPROOF(m, D[n], b)."""
    n = len(hashes)
    if m == n:
        return [] if complete else [naive_mth(hashes)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*naive_subproof(m, hashes[:k], complete), naive_mth(hashes[k:])]
    return [*naive_subproof(m - k, hashes[k:], False), naive_mth(hashes[:k])]


def build_store(leaf_hashes: list[bytes]) -> dict[tuple[int, int], bytes]:
    """Store every complete subtree the way the appender does: from CompactRange.append."""
    store: dict[tuple[int, int], bytes] = {}
    frontier = CompactRange()
    for h in leaf_hashes:
        for level, index, node in frontier.append(h):
            store[level, index] = node
    return store


LEAF_HASHES = [merkle.leaf_hash(b"leaf %d" % i) for i in range(MAX_SIZE)]
STORE = build_store(LEAF_HASHES)


class CountingStore:
    """A hash_at callback that counts lookups and refuses nodes outside the tree."""

    def __init__(self, size: int) -> None:
        self.size, self.lookups = size, 0

    def __call__(self, level: int, index: int) -> bytes:
        assert (index + 1) << level <= self.size, "asked for a subtree beyond the tree"
        self.lookups += 1
        return STORE[level, index]


def test_hasher_matches_rfc6962_known_answers() -> None:
    kat = VECTORS["hasher"]
    assert merkle.EMPTY_ROOT.hex() == kat["empty_root"]
    assert merkle.leaf_hash(b"").hex() == kat["empty_leaf"]
    assert merkle.leaf_hash(b"L123456").hex() == kat["leaf_L123456"]
    assert merkle.node_hash(b"N123", b"N456").hex() == kat["node_N123_N456"]


def test_node_hash_is_domain_separated_from_leaf_hash_and_ordered() -> None:
    a, b = merkle.leaf_hash(b"Hello"), merkle.leaf_hash(b"World")
    assert merkle.node_hash(a, b) != merkle.leaf_hash(a + b)
    assert merkle.node_hash(a, b) != merkle.node_hash(b, a)


def test_roots_of_the_standard_eight_leaves_match_known_answers() -> None:
    hashes = [merkle.leaf_hash(x) for x in LEAVES]
    for size in range(1, 9):
        assert merkle.root_from_leaf_hashes(hashes[:size]) == ROOTS[size - 1]
    assert merkle.root_from_leaf_hashes([]) == merkle.EMPTY_ROOT


def test_known_inclusion_proofs_are_generated_and_verified() -> None:
    store = build_store([merkle.leaf_hash(x) for x in LEAVES])
    for case in VECTORS["inclusion"]:
        index, size = case["index"], case["size"]
        proof = [bytes.fromhex(p) for p in case["proof"]]
        assert merkle.inclusion_proof(index, size, lambda lv, ix: store[lv, ix]) == proof
        leaf = merkle.leaf_hash(LEAVES[index])
        merkle.verify_inclusion(leaf, index, size, proof, ROOTS[size - 1])


def test_known_consistency_proofs_are_generated_and_verified() -> None:
    store = build_store([merkle.leaf_hash(x) for x in LEAVES])
    for case in VECTORS["consistency"]:
        old, new = case["size1"], case["size2"]
        proof = [bytes.fromhex(p) for p in case["proof"]]
        assert merkle.consistency_proof(old, new, lambda lv, ix: store[lv, ix]) == proof
        merkle.verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def test_vendored_transparency_dev_testdata_files_give_the_expected_verdicts() -> None:
    b64 = base64.b64decode
    for case in VECTORS["testdata_inclusion"]:
        args = (b64(case["leafHash"]), case["leafIdx"], case["treeSize"])
        proof, root = [b64(p) for p in case["proof"]], b64(case["root"])
        if case["wantErr"]:
            with pytest.raises(ProofError):
                merkle.verify_inclusion(*args, proof, root)
        else:
            merkle.verify_inclusion(*args, proof, root)
    for case in VECTORS["testdata_consistency"]:
        args2 = (case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"]))
        proof = [b64(p) for p in case["proof"]]
        if case["wantErr"]:
            with pytest.raises(ProofError):
                merkle.verify_consistency(*args2, proof)
        else:
            merkle.verify_consistency(*args2, proof)


def test_root_from_stored_subtrees_matches_naive_for_every_size() -> None:
    for size in range(MAX_SIZE + 1):
        store = CountingStore(size)
        assert merkle.root_at(size, store) == naive_mth(LEAF_HASHES[:size])
        assert store.lookups == size.bit_count()


def test_inclusion_proof_from_stored_subtrees_matches_naive_for_every_size() -> None:
    for size in range(1, MAX_SIZE + 1):
        root = naive_mth(LEAF_HASHES[:size])
        for index in range(size):
            store = CountingStore(size)
            proof = merkle.inclusion_proof(index, size, store)
            assert proof == naive_path(index, LEAF_HASHES[:size]), (index, size)
            assert store.lookups <= 2 * size.bit_length()
            merkle.verify_inclusion(LEAF_HASHES[index], index, size, proof, root)


def test_consistency_proof_from_stored_subtrees_matches_naive_for_every_pair() -> None:
    for new in range(1, MAX_SIZE + 1):
        new_root = naive_mth(LEAF_HASHES[:new])
        for old in range(1, new + 1):
            store = CountingStore(new)
            proof = merkle.consistency_proof(old, new, store)
            want = naive_subproof(old, LEAF_HASHES[:new], True) if old < new else []
            assert proof == want, (old, new)
            assert store.lookups <= 3 * new.bit_length()
            merkle.verify_consistency(old, new, naive_mth(LEAF_HASHES[:old]), new_root, proof)


def test_proof_plans_list_each_needed_node_once_for_a_batch_fetch() -> None:
    size, index = 1_000_003, 777_777
    plan = merkle.inclusion_plan(index, size)
    nodes = merkle.plan_nodes(plan)
    assert len(nodes) == len(set(nodes)) <= 2 * size.bit_length()
    assert all((ix + 1) << lv <= size for lv, ix in nodes)
    consistency_nodes = merkle.plan_nodes(merkle.consistency_plan(999_999, size))
    assert len(consistency_nodes) <= 3 * size.bit_length()


def _inclusion_mutations(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> Iterator[tuple[int, int, bytes, bytes, list[bytes]]]:
    """The corruptions of transparency-dev/merkle proof/verify_test.go corruptInclusionProof."""
    yield index - 1, size, root, leaf, proof
    yield index + 1, size, root, leaf, proof
    yield index ^ 2, size, root, leaf, proof
    yield index, size * 2, root, leaf, proof
    yield index, size // 2, root, leaf, proof
    yield index, size, root, b"WrongLeaf", proof
    yield index, size, merkle.EMPTY_ROOT, leaf, proof
    yield index, size, SOME_HASH, leaf, proof
    yield index, size, root, leaf, [*proof, b""]
    yield index, size, root, leaf, [*proof, root]
    yield index, size, root, leaf, [b"", *proof]
    yield index, size, root, leaf, [root, *proof]
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 8
        yield index, size, root, leaf, [*proof[:i], bytes(flipped), *proof[i + 1 :]]
    if proof:
        yield index, size, root, leaf, proof[:-1]
    if len(proof) > 1:
        yield index, size, root, leaf, [proof[0], SOME_HASH, *proof[1:]]


def test_tampered_inclusion_proofs_are_rejected_for_every_size() -> None:
    for size in range(1, 33):
        root = naive_mth(LEAF_HASHES[:size])
        for index in range(size):
            proof = naive_path(index, LEAF_HASHES[:size])
            leaf = LEAF_HASHES[index]
            for i, s, r, h, p in _inclusion_mutations(index, size, proof, root, leaf):
                with pytest.raises(ProofError):
                    merkle.verify_inclusion(h, i, s, p, r)


def test_tampered_consistency_proofs_are_rejected_for_every_pair() -> None:
    for new in range(2, 33):
        for old in range(1, new):
            r1, r2 = naive_mth(LEAF_HASHES[:old]), naive_mth(LEAF_HASHES[:new])
            proof = naive_subproof(old, LEAF_HASHES[:new], True)
            mutations = [
                (old - 1, new, r1, r2, proof),
                (old + 1, new, r1, r2, proof),
                (old ^ 2, new, r1, r2, proof),
                (old, new * 2, r1, r2, proof),
                (old, new // 2, r1, r2, proof),
                (old, new, b"WrongRoot", r2, proof),
                (old, new, r1, b"WrongRoot", proof),
                (old, new, r2, r1, proof),
                (old, new, r1, r2, []),
                (old, new, r1, r2, [*proof, b""]),
                (old, new, r1, r2, [*proof, r1]),
                (old, new, r1, r2, [*proof, r2]),
                (old, new, r1, r2, [b"", *proof]),
                (old, new, r1, r2, [r1, *proof]),
                (old, new, r1, r2, [r2, *proof]),
                (old, new, r1, r2, [proof[0], *proof]),
                (old, new, r1, r2, proof[:-1]),
            ]
            for i in range(len(proof)):
                flipped = bytearray(proof[i])
                flipped[0] ^= 16
                mutations.append((old, new, r1, r2, [*proof[:i], bytes(flipped), *proof[i + 1 :]]))
            for o, n, a, b, p in mutations:
                with pytest.raises(ProofError):
                    merkle.verify_consistency(o, n, a, b, p)


def test_trivial_consistency_cases_follow_transparency_dev() -> None:
    r1, r2 = SOME_HASH, merkle.leaf_hash(b"x")
    merkle.verify_consistency(0, 0, r1, r1, [])
    merkle.verify_consistency(0, 1, r1, r2, [])
    merkle.verify_consistency(1, 1, r2, r2, [])
    bad = [
        (0, 0, r1, r2, []),
        (1, 1, r1, r2, []),
        (1, 0, r1, r2, []),
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),
        (0, 0, r1, r1, [merkle.EMPTY_ROOT]),
        (0, 1, r1, r1, [merkle.EMPTY_ROOT]),
        (1, 1, r1, r1, [merkle.EMPTY_ROOT]),
    ]
    for args in bad:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)


def test_inclusion_verification_errors_are_one_clear_sentence() -> None:
    with pytest.raises(ProofError, match="outside a tree of size 4"):
        merkle.verify_inclusion(LEAF_HASHES[0], 4, 4, [], naive_mth(LEAF_HASHES[:4]))
    with pytest.raises(ProofError, match="too short"):
        merkle.verify_inclusion(LEAF_HASHES[0], 0, 4, [LEAF_HASHES[1]], naive_mth(LEAF_HASHES[:4]))
    with pytest.raises(ProofError, match="not a 32-byte"):
        merkle.verify_inclusion(b"short", 0, 1, [], LEAF_HASHES[0])


def test_compact_range_appends_return_every_new_complete_subtree() -> None:
    frontier = CompactRange()
    created = []
    for h in LEAF_HASHES[:8]:
        created.append([(lv, ix) for lv, ix, _ in frontier.append(h)])
    assert created[0] == [(0, 0)]
    assert created[1] == [(0, 1), (1, 0)]
    assert created[3] == [(0, 3), (1, 1), (2, 0)]
    assert created[7] == [(0, 7), (1, 3), (2, 1), (3, 0)]
    assert frontier.nodes() == [(3, 0, naive_mth(LEAF_HASHES[:8]))]


def test_compact_range_root_matches_naive_after_every_append() -> None:
    frontier = CompactRange()
    for size, h in enumerate(LEAF_HASHES, start=1):
        frontier.append(h)
        assert frontier.size == size
        assert frontier.root() == naive_mth(LEAF_HASHES[:size])


def test_compact_range_survives_bytes_and_json_round_trips() -> None:
    frontier = CompactRange()
    frontier.extend(LEAF_HASHES[:45])
    for copy in (
        CompactRange.from_bytes(frontier.to_bytes()),
        CompactRange.from_json(json.loads(json.dumps(frontier.to_json()))),
    ):
        assert copy == frontier
        copy.append(LEAF_HASHES[45])
        assert copy.root() == naive_mth(LEAF_HASHES[:46])
    assert frontier.size == 45


def test_compact_range_is_rebuilt_from_stored_nodes_for_any_size() -> None:
    for size in range(MAX_SIZE):
        rebuilt = CompactRange.from_hash_at(size, CountingStore(size))
        assert rebuilt.root() == naive_mth(LEAF_HASHES[:size])
        assert [(lv, ix) for lv, ix, _ in rebuilt.nodes()] == CompactRange.node_ids(size)


def test_compact_range_rejects_inconsistent_state() -> None:
    with pytest.raises(ValueError, match="needs 2 hashes"):
        CompactRange(3, [LEAF_HASHES[0]])
    with pytest.raises(ValueError, match="impossible length"):
        CompactRange.from_bytes(b"\x00" * 9)
    with pytest.raises(ValueError, match="not 32"):
        CompactRange().append(b"short")


def test_a_wrong_length_stored_hash_is_reported_where_it_is_read() -> None:
    with pytest.raises(ValueError, match="level 0 index 1 is 3 bytes"):
        merkle.inclusion_proof(0, 2, lambda level, index: b"bad")
