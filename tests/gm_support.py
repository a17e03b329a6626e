"""The independent check of the gm suite: gmssl (pure Python SM2/SM3/SM4), never used by hub/.

Every SM2 signature, SM3 digest and SM2/SM4 ciphertext govhub makes with Tongsuo in the gm
suite is re-checked here with a second implementation, so the two agreeing is evidence of
interoperability, not of one library agreeing with itself.
"""

from __future__ import annotations

import base64

from gmssl import func, sm2, sm3, sm4

SIGNER_ID = "1234567812345678"


def gmssl_key(private_value: int | None, public_key: bytes, **options: int) -> sm2.CryptSM2:
    """gmssl's SM2 object for an uncompressed public key (0x04 || x || y).

    The public key is set after construction: gmssl's constructor removes a "04" prefix with
    `str.lstrip("04")`, which also strips every leading 0 and 4 of x, so about one key in
    eight (one in 256 without the prefix) came out short and failed to verify.
    """
    assert len(public_key) == 65 and public_key[0] == 4
    private = "" if private_value is None else f"{private_value:064x}"
    crypt = sm2.CryptSM2(private_key=private, public_key="", **options)
    crypt.public_key = public_key[1:].hex()
    return crypt


def gmssl_sm3(data: bytes) -> bytes:
    """SM3 by gmssl."""
    return bytes.fromhex(sm3.sm3_hash(func.bytes_to_list(data)))


def _der_pair(signature: bytes) -> tuple[int, int]:
    """r and s of a DER SEQUENCE { INTEGER r, INTEGER s } (strict, as in the wire contract)."""
    assert signature[0] == 0x30 and signature[1] == len(signature) - 2, "not a DER SEQUENCE"
    at, values = 2, []
    for _ in range(2):
        assert signature[at] == 0x02, "not a DER INTEGER"
        size = signature[at + 1]
        values.append(int.from_bytes(signature[at + 2 : at + 2 + size], "big"))
        at += 2 + size
    assert at == len(signature)
    return values[0], values[1]


def gmssl_verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """Verify an SM2 signature (SM3, signer ID 1234567812345678) with gmssl."""
    r, s = _der_pair(signature)
    crypt = gmssl_key(None, public_key)
    # gmssl's verify_with_sm3 computes Z with the default ID 1234567812345678 (GM/T 0009).
    return bool(crypt.verify_with_sm3(f"{r:064x}{s:064x}", message))


def gmssl_sign(private_value: int, public_key: bytes, message: bytes) -> bytes:
    """An SM2 signature made by gmssl, DER-encoded, for Tongsuo to verify."""
    crypt = gmssl_key(private_value, public_key)
    raw = bytes.fromhex(crypt.sign_with_sm3(message))
    return _der(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _der(r: int, s: int) -> bytes:
    def integer(value: int) -> bytes:
        body = value.to_bytes((value.bit_length() + 8) // 8, "big")
        return b"\x02" + bytes([len(body)]) + body

    inner = integer(r) + integer(s)
    return b"\x30" + bytes([len(inner)]) + inner


def gmssl_sm2_decrypt(private_value: int, ciphertext_der: bytes) -> bytes:
    """Open an SM2 ciphertext (GM/T 0009 DER SM2Cipher, C1 C3 C2 order) with gmssl."""
    assert ciphertext_der[0] == 0x30
    at = 2 if ciphertext_der[1] < 0x80 else 2 + (ciphertext_der[1] & 0x7F)
    parts = []
    for _ in range(4):
        tag, size = ciphertext_der[at], ciphertext_der[at + 1]
        at += 2
        if size & 0x80:
            n = size & 0x7F
            size = int.from_bytes(ciphertext_der[at : at + n], "big")
            at += n
        parts.append((tag, ciphertext_der[at : at + size]))
        at += size
    (_, x), (_, y), (_, c3), (_, c2) = parts
    c1 = int.from_bytes(x, "big").to_bytes(32, "big") + int.from_bytes(y, "big").to_bytes(32, "big")
    crypt = sm2.CryptSM2(private_key=f"{private_value:064x}", public_key="", mode=1)
    return bytes(crypt.decrypt(c1 + c3 + c2))


def gmssl_sm4_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes = b"") -> bytes:
    """Open SM4-GCM (NIST SP 800-38D with the SM4 block) using gmssl's SM4 block cipher.

    The GCM composition (counter mode and GHASH) is written out here on purpose: it is the
    independent half of the check, built only on gmssl's SM4 block function.
    """
    assert len(nonce) == 12
    cipher = sm4.CryptSM4()
    cipher.set_key(key, sm4.SM4_ENCRYPT)

    def block(data: bytes) -> bytes:
        return bytes(cipher.one_round(cipher.sk, list(data)))

    h = int.from_bytes(block(bytes(16)), "big")

    def gmul(x: int, y: int) -> int:
        z, v = 0, x
        for i in range(127, -1, -1):
            if (y >> i) & 1:
                z ^= v
            v = (v >> 1) ^ (0xE1 << 120) if v & 1 else v >> 1
        return z

    def ghash(a: bytes, c: bytes) -> int:
        y = 0
        for data in (a, c):
            padded = data + bytes(-len(data) % 16)
            for i in range(0, len(padded), 16):
                y = gmul(y ^ int.from_bytes(padded[i : i + 16], "big"), h)
        lengths = (len(a) * 8).to_bytes(8, "big") + (len(c) * 8).to_bytes(8, "big")
        return gmul(y ^ int.from_bytes(lengths, "big"), h)

    ciphertext, tag = sealed[:-16], sealed[-16:]
    j0 = nonce + b"\x00\x00\x00\x01"
    expected = int.from_bytes(block(j0), "big") ^ ghash(aad, ciphertext)
    assert expected.to_bytes(16, "big") == tag, "SM4-GCM tag does not verify with gmssl"
    out = bytearray()
    counter = 2
    for i in range(0, len(ciphertext), 16):
        stream = block(nonce + counter.to_bytes(4, "big"))
        out += bytes(a ^ b for a, b in zip(ciphertext[i : i + 16], stream, strict=False))
        counter += 1
    return bytes(out)


def check_gm_event(headers: dict[str, str], subject: str, body: bytes, public_key: bytes) -> None:
    """Assert that a v1-sm2 event verifies with gmssl exactly as ARCHITECTURE.md fixes it."""
    signed = "".join(
        line + "\n"
        for line in (
            "govhub-sig-v1-sm2",
            subject,
            headers["ce-id"],
            headers["ce-source"],
            headers["ce-type"],
            headers["ce-time"],
            gmssl_sm3(body).hex(),
        )
    ).encode()
    owner, _, kid = headers["govhub-key"].partition("/")
    assert owner == headers["ce-source"]
    assert kid == gmssl_sm3(public_key)[:8].hex(), "key id is not SM3(04 || x || y)[:8]"
    signature = base64.b64decode(headers["govhub-sig"], validate=True)
    assert gmssl_verify(public_key, signature, signed), "gmssl refuses the event's signature"
