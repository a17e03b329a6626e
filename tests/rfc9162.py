"""An independent RFC 9162 / C2SP checker for govhub's audit output, sharing no govhub code.

Written from the texts of RFC 9162 (sections 2.1.1, 2.1.3.2, 2.1.4.2), c2sp.org/signed-note,
c2sp.org/tlog-checkpoint and c2sp.org/tlog-tiles, and deliberately in a different style from
hub/merkle.py (recursive definitions where govhub uses bit tricks), so a shared
misreading of the specs is unlikely to hide in both. Uses only hashlib and ``cryptography``'s
raw Ed25519 verification.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) by the recursive definition of RFC 9162 2.1.1."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf(leaves[0])
    k = split(len(leaves))
    return node(mth(leaves[:k]), mth(leaves[k:]))


def path(m: int, lo: int, hi: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """PATH(m, D[lo:hi]) of RFC 6962 2.1.1, with subtree(a, b) = MTH(D[a:b])."""
    if hi - lo == 1:
        return []
    k = split(hi - lo)
    if m < k:
        return [*path(m, lo, lo + k, subtree), subtree(lo + k, hi)]
    return [*path(m - k, lo + k, hi, subtree), subtree(lo, lo + k)]


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: list[bytes], root: bytes
) -> bool:
    """RFC 9162 2.1.3.2, step by step."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            r = node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            r = node(r, p)
        fn //= 2
        sn //= 2
    return sn == 0 and r == root


def verify_consistency(
    first: int, second: int, first_hash: bytes, second_hash: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 2.1.4.2, step by step."""
    if first > second:
        return False
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0:
        return not proof
    if not proof:
        return False
    if first & (first - 1) == 0:
        proof = [first_hash, *proof]
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn //= 2
        sn //= 2
    fr = sr = proof[0]
    for c in proof[1:]:
        if sn == 0:
            return False
        if fn % 2 == 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn //= 2
                    sn //= 2
        else:
            sr = node(sr, c)
        fn //= 2
        sn //= 2
    return sn == 0 and fr == first_hash and sr == second_hash


def open_checkpoint(signed: str, vkey: str) -> tuple[str, int, bytes, list[str]]:
    """Check the log's Ed25519 note signature; return origin, size, root and other signers.

    vkey is ``<name>+<hex key id>+<base64(0x01 || public key)>`` (c2sp.org/signed-note).
    """
    name, key_id_hex, material = vkey.split("+", 2)
    raw = base64.b64decode(material)
    assert raw[0] == 0x01 and len(raw) == 33, "not an Ed25519 note key"
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    assert key_id.hex() == key_id_hex, "vkey key id does not match its key"
    text, _, signatures = signed.partition("\n\n")
    text += "\n"
    others, good = [], False
    for line in signatures.splitlines():
        assert line.startswith("\u2014 "), f"bad signature line {line!r}"
        signer, blob = line[2:].split(" ")
        sig = base64.b64decode(blob)
        if signer == name and sig[:4] == key_id:
            try:
                Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], text.encode())
            except InvalidSignature:
                return ("", -1, b"", [])
            good = True
        else:
            others.append(signer)
    if not good:
        return ("", -1, b"", [])
    origin, size, root = text.split("\n")[:3]
    return origin, int(size), base64.b64decode(root), others
