"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs from stored subtrees, and proof verification.

Nodes are named by coordinates ``(level, index)``: the node at level ``L`` and index ``i`` is the
Merkle Tree Hash of the complete subtree ``D[i * 2**L : (i + 1) * 2**L]``; level 0 holds leaf
hashes. Storage keeps only complete subtrees, so a proof for a tree of size ``N`` is planned as
O(log N) node coordinates (the ragged right edge folded from complete subtrees), fetched through a
``hash_at(level, index)`` callback or in one batch, and assembled.

The audit log builds its tree with it and batch signatures (hub/batchsig.py) their roots, so it
sits below both. It imports only the standard library: it is one of the three files the offline
verifier runs from (docs/audit.md).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""Coordinates ``(level, index)`` of a complete subtree of ``2**level`` leaves."""

HashAt = Callable[[int, int], bytes]
"""Callback returning the stored hash of the complete subtree at ``(level, index)``."""

ProofPlan = list[tuple[NodeId, ...]]
"""One tuple per proof hash: the complete subtrees (left to right) whose fold is that hash."""

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof, or the sizes and hashes it is checked against, does not verify."""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash SHA-256(0x00 || data)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash SHA-256(0x01 || left || right)."""
    return _sha256(b"\x01" + left + right).digest()


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Fold perfect-subtree hashes, largest first, right to left into one Merkle Tree Hash."""
    if not hashes:
        return EMPTY_ROOT
    h = hashes[-1]
    for left in reversed(hashes[:-1]):
        h = _sha256(b"\x01" + left + h).digest()
    return h


def range_nodes(start: int, end: int) -> list[NodeId]:
    """Return the complete subtrees, left to right, that exactly cover leaves ``[start, end)``.

    For the ranges used by RFC 6962 (``start`` aligned to a power of two at least ``end - start``,
    as for a whole tree or a proof's ragged right edge) folding these right to left gives
    ``MTH(D[start:end])``.
    """
    if not 0 <= start <= end:
        raise ValueError(f"invalid leaf range [{start}, {end})")
    nodes: list[NodeId] = []
    while start < end:
        level = (end - start).bit_length() - 1
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """Plan the RFC 6962 PATH(index, D[0:size]) inclusion proof as node coordinates."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    plan: ProofPlan = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            plan.append(tuple(range_nodes(lo + k, hi)))
            hi = lo + k
        else:
            plan.append(tuple(range_nodes(lo, lo + k)))
            lo += k
    plan.reverse()  # the recursion emits the deepest sibling first
    return plan


def consistency_plan(old_size: int, new_size: int) -> ProofPlan:
    """Plan the RFC 6962 PROOF(old_size, D[0:new_size]) consistency proof as node coordinates."""
    if not 0 <= old_size <= new_size:
        raise ValueError(f"no consistency proof from size {old_size} to size {new_size}")
    if old_size in (0, new_size):
        return []
    plan: ProofPlan = []
    lo, hi, complete = 0, new_size, True
    while old_size != hi:
        k = _largest_power_of_two_below(hi - lo)
        if old_size <= lo + k:
            plan.append(tuple(range_nodes(lo + k, hi)))
            hi = lo + k
        else:
            plan.append(tuple(range_nodes(lo, lo + k)))
            lo += k
            complete = False
    if not complete:
        # The old tree's last perfect subtree [lo, old_size) is not implied by old_root.
        plan.append(tuple(range_nodes(lo, hi)))
    plan.reverse()
    return plan


def plan_nodes(plan: ProofPlan) -> list[NodeId]:
    """Return the distinct node coordinates a plan needs, for fetching them in one query."""
    return sorted({node for element in plan for node in element})


def assemble_proof(plan: ProofPlan, hash_at: HashAt) -> list[bytes]:
    """Build the proof hashes of ``plan`` from stored complete-subtree hashes."""
    proof = []
    for element in plan:
        hashes = [_checked(hash_at, level, index) for level, index in element]
        proof.append(_fold(hashes))
    return proof


def _checked(hash_at: HashAt, level: int, index: int) -> bytes:
    h = hash_at(level, index)
    # A short or long stored value would silently yield a wrong proof; fail where it is caused.
    if len(h) != HASH_SIZE:
        raise ValueError(f"stored hash at level {level} index {index} is {len(h)} bytes, not 32")
    return h


def inclusion_proof(index: int, size: int, hash_at: HashAt) -> list[bytes]:
    """Return the inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    return assemble_proof(inclusion_plan(index, size), hash_at)


def consistency_proof(old_size: int, new_size: int, hash_at: HashAt) -> list[bytes]:
    """Return the consistency proof between the trees of ``old_size`` and ``new_size`` leaves."""
    return assemble_proof(consistency_plan(old_size, new_size), hash_at)


def root_at(size: int, hash_at: HashAt) -> bytes:
    """Return the root hash of the tree of ``size`` leaves from stored complete subtrees."""
    return _fold([_checked(hash_at, level, index) for level, index in range_nodes(0, size)])


def root_from_leaf_hashes(leaf_hashes: Iterable[bytes]) -> bytes:
    """Return the root hash of a tree given all its leaf hashes (in memory; for small trees)."""
    frontier = CompactRange()
    frontier.extend(leaf_hashes)
    return frontier.root()


def _require_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes long, not a 32-byte SHA-256 hash")


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` in the tree of ``size`` with ``root``.

    Implements RFC 9162 §2.1.3.2; raises ProofError with one sentence when it does not hold.
    """
    _require_hash(leaf, "the leaf hash")
    _require_hash(root, "the root hash")
    for i, p in enumerate(proof):
        _require_hash(p, f"inclusion proof hash {i}")
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    r, problem = _climb(leaf, index, size, proof)
    if problem:
        raise ProofError(f"inclusion proof is {problem} for leaf {index} of a tree of {size}")
    if r != root:
        raise ProofError("inclusion proof does not lead to the expected root hash")


def _climb(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> tuple[bytes, str]:
    """RFC 9162 §2.1.3.2's walk from a leaf to the root: the root, or "" and what is wrong."""
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return b"", "too long"
        if fn & 1 or fn == sn:
            r = _sha256(b"\x01" + p + r).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = _sha256(b"\x01" + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return b"", "too short"
    return r, ""


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof of ``leaf`` at ``index`` in a tree of ``size`` leads to.

    RFC 9162 §2.1.3.2 without the final comparison (batch signatures sign the root itself);
    None when the proof's length does not fit the index and size.
    """
    if not 0 <= index < size or len(leaf) != HASH_SIZE:
        return None
    if any(len(p) != HASH_SIZE for p in proof):
        return None
    r, problem = _climb(leaf, index, size, proof)
    return None if problem else r


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` with ``new_root`` extends the one of ``old_size``.

    Implements RFC 9162 §2.1.4.2; raises ProofError with one sentence when it does not hold.
    """
    _require_hash(old_root, "the old root hash")
    _require_hash(new_root, "the new root hash")
    for i, p in enumerate(proof):
        _require_hash(p, f"consistency proof hash {i}")
    if not 0 <= old_size <= new_size:
        raise ProofError(f"tree size went from {old_size} to {new_size}, which is not growth")
    if old_size == new_size:
        if proof:
            raise ProofError("consistency proof between equal tree sizes must be empty")
        if old_root != new_root:
            raise ProofError(f"two different root hashes were given for tree size {old_size}")
        return
    if old_size == 0:
        # Every tree extends the empty tree; a non-empty proof means the caller is confused.
        if proof:
            raise ProofError("consistency proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof from size {old_size} to {new_size} is too long")
        if fn & 1 or fn == sn:
            fr = _sha256(b"\x01" + c + fr).digest()
            sr = _sha256(b"\x01" + c + sr).digest()
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = _sha256(b"\x01" + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is too short")
    if fr != old_root:
        raise ProofError(f"consistency proof does not lead to the root of tree size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof does not lead to the root of tree size {new_size}")


class CompactRange:
    """The Merkle frontier of an append-only tree: the roots of its perfect subtrees.

    It holds O(log N) hashes, largest subtree first; ``append`` returns every complete-subtree
    node it creates so the appender can store them, and the state serialises to bytes or JSON so
    it can be saved in the same transaction as the leaves.
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        """Create a frontier for ``size`` leaves from its perfect-subtree hashes, largest first."""
        if size < 0 or len(hashes) != size.bit_count():
            raise ValueError(f"a tree of size {size} needs {max(size, 0).bit_count()} hashes")
        for h in hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"frontier hash is {len(h)} bytes, not 32")
        self._size = size
        self._hashes = list(hashes)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> list[bytes]:
        """The perfect-subtree hashes, largest subtree first."""
        return list(self._hashes)

    def nodes(self) -> list[tuple[int, int, bytes]]:
        """Return the frontier as ``(level, index, hash)`` triples, left to right."""
        coords = range_nodes(0, self._size)
        return [(lv, ix, h) for (lv, ix), h in zip(coords, self._hashes, strict=True)]

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Append one leaf hash; return the new ``(level, index, hash)`` nodes, leaf first."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"leaf hash is {len(leaf)} bytes, not 32")
        index = self._size
        stack = self._hashes
        created = [(0, index, leaf)]
        h, level, n = leaf, 0, index
        while n & 1:
            h = _sha256(b"\x01" + stack.pop() + h).digest()
            level += 1
            n >>= 1
            created.append((level, n, h))
        stack.append(h)
        self._size = index + 1
        return created

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        """Append many leaf hashes; return all nodes created, in creation order."""
        created: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            created.extend(self.append(leaf))
        return created

    def root(self) -> bytes:
        """Return the Merkle Tree Hash of the current tree."""
        return _fold(self._hashes)

    def copy(self) -> CompactRange:
        """Return an independent copy (for appending speculatively before a commit)."""
        return CompactRange(self._size, self._hashes)

    @staticmethod
    def node_ids(size: int) -> list[NodeId]:
        """Return the coordinates of the stored nodes that make up the frontier at ``size``."""
        return range_nodes(0, size)

    @classmethod
    def from_hash_at(cls, size: int, hash_at: HashAt) -> CompactRange:
        """Rebuild the frontier of the tree of ``size`` leaves from stored node hashes."""
        return cls(size, [_checked(hash_at, lv, ix) for lv, ix in range_nodes(0, size)])

    def to_bytes(self) -> bytes:
        """Serialise as an 8-byte big-endian size followed by the frontier hashes."""
        return self._size.to_bytes(8, "big") + b"".join(self._hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> CompactRange:
        """Load a frontier written by ``to_bytes``."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise ValueError(f"compact range encoding has an impossible length of {len(data)}")
        size = int.from_bytes(data[:8], "big")
        body = data[8:]
        return cls(size, [body[i : i + HASH_SIZE] for i in range(0, len(body), HASH_SIZE)])

    def to_json(self) -> dict[str, Any]:
        """Serialise as ``{"size": int, "hashes": [base64, ...]}``."""
        return {"size": self._size, "hashes": [base64.b64encode(h).decode() for h in self._hashes]}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> CompactRange:
        """Load a frontier written by ``to_json``."""
        size, hashes = obj.get("size"), obj.get("hashes")
        if not isinstance(size, int) or not isinstance(hashes, list):
            raise ValueError("compact range JSON needs an integer size and a list of hashes")
        return cls(size, [base64.b64decode(h, validate=True) for h in hashes])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CompactRange):
            return NotImplemented
        return self._size == other._size and self._hashes == other._hashes

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"CompactRange(size={self._size}, root={self.root().hex()[:16]}…)"
