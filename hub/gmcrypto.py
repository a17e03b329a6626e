"""Confidential documents in the gm suite: SM2 public-key encryption of the key, SM4-GCM content.

```
wrap   = SM2-Encrypt(recipient key, SM3(info) ‖ secret)   GB/T 32918.4, C1 C3 C2 order, the
                                                         GM/T 0009 DER SM2Cipher encoding
chunk  = nonce ‖ SM4-GCM(k_enc, nonce, chunk, aad)        GB/T 32907 block, NIST SP 800-38D mode
nonce  = HMAC-SM3(k_mac, aad ‖ SM3(chunk))[:12]           synthetic: deterministic per content
```

`info` binds the document, the recipient and its key id as HPKE's info does in the intl suite
(SM2 encryption has no associated data, so its SM3 digest rides inside the plaintext and is
checked on opening). The 32-byte content key splits into the SM4 key `k_enc` and the nonce key
`k_mac`. A resumed send must reproduce the chunks it already stored, so the nonce cannot be
random; it cannot be the chunk index either, because GCM with a repeated nonce over different
plaintext leaks the authentication key. A nonce derived from the content makes a repeat happen
only for identical chunks, which then reveals only that they are identical (the SIV idea).

SM2 and SM4 come from Tongsuo (`tongsuopy`) and `cryptography`; the private key is derived from
the 32-byte seed hub/keys.py stores for every encryption key.
"""

from __future__ import annotations

import hmac
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as c_hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from tongsuopy.backends.tongsuo.backend import backend
from tongsuopy.crypto.asymciphers import ec

from hub.errors import ContentCorrupted
from hub.suites import GM, sm3

CONTENT_CIPHER = "SM4-GCM"
_NONCE = 12
_TAG = 16
OVERHEAD = _NONCE + _TAG
# The order n of the SM2 curve (GB/T 32918.5): a private key is an integer in [1, n - 2].
_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


def private_key(seed: bytes) -> Any:
    """The SM2 private key of a 32-byte seed: d = seed mod (n - 2) + 1."""
    return ec.derive_private_key(int.from_bytes(seed, "big") % (_N - 2) + 1, ec.SM2())


def public_bytes(seed: bytes) -> bytes:
    """The 65-byte uncompressed public point of a seed's key."""
    return GM.public_bytes(private_key(seed))


def key_id(public: bytes) -> str:
    """An SM2 encryption key's id: SM3 over the point, first 8 bytes, as signing keys."""
    return GM.key_id(public)


def _pkey_call(key: Any, init: Any, run: Any, data: bytes) -> bytes:
    """Run EVP_PKEY_encrypt or _decrypt of Tongsuo (which tongsuopy binds but does not wrap)."""
    lib, ffi = backend._lib, backend._ffi
    ctx = lib.EVP_PKEY_CTX_new(key._evp_pkey, ffi.NULL)
    if ctx == ffi.NULL:
        raise ValueError("Tongsuo cannot use this SM2 key")
    ctx = ffi.gc(ctx, lib.EVP_PKEY_CTX_free)
    size = ffi.new("size_t *")
    if init(ctx) != 1 or run(ctx, ffi.NULL, size, data, len(data)) != 1:
        backend._consume_errors()
        raise ValueError("SM2 operation refused")
    out = ffi.new("unsigned char[]", size[0])
    if run(ctx, out, size, data, len(data)) != 1:
        backend._consume_errors()
        raise ValueError("SM2 operation failed")
    return bytes(ffi.buffer(out)[: size[0]])


def wrap(public: bytes, info: bytes, secret: bytes) -> bytes:
    """SM2-encrypt `secret` to a recipient's point, bound to `info`."""
    key = GM.load_public(public)
    lib = backend._lib
    return _pkey_call(key, lib.EVP_PKEY_encrypt_init, lib.EVP_PKEY_encrypt, sm3(info) + secret)


def unwrap(seed: bytes, info: bytes, sealed: bytes) -> bytes:
    """Open a wrap with the recipient's seed; ValueError if it is altered or bound elsewhere."""
    lib = backend._lib
    plain = _pkey_call(private_key(seed), lib.EVP_PKEY_decrypt_init, lib.EVP_PKEY_decrypt, sealed)
    if not hmac.compare_digest(plain[:32], sm3(info)):
        raise ValueError("the wrap is bound to another document, recipient or key")
    return plain[32:]


class SM4ChunkCipher:
    """SM4-GCM over a document's chunks with synthetic nonces (module docstring)."""

    OVERHEAD = OVERHEAD

    def __init__(self, key: bytes, doc_id: str, count: int) -> None:
        if len(key) != 32:
            raise ValueError("an SM4 content key is 32 bytes: the SM4 key and the nonce key")
        self._enc, self._mac = key[:16], key[16:]
        self._prefix = f"govhub-doc-chunk-v1\n{doc_id}\n".encode()
        self._count = count

    def _aad(self, index: int) -> bytes:
        return self._prefix + f"{index}\n{self._count}".encode()

    def _nonce(self, aad: bytes, plaintext: bytes) -> bytes:
        mac = c_hmac.HMAC(self._mac, hashes.SM3())
        mac.update(aad + sm3(plaintext))
        return mac.finalize()[:_NONCE]

    def encrypt(self, index: int, plaintext: bytes) -> bytes:
        """The stored form of one chunk: nonce ‖ ciphertext ‖ tag."""
        aad = self._aad(index)
        nonce = self._nonce(aad, plaintext)
        enc = Cipher(algorithms.SM4(self._enc), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        body = enc.update(plaintext) + enc.finalize()
        return nonce + body + enc.tag

    def decrypt(self, index: int, stored: bytes) -> bytes:
        """The plaintext of one stored chunk, or ContentCorrupted."""
        if len(stored) < OVERHEAD:
            raise ContentCorrupted(f"chunk {index} does not decrypt: it is too short")
        nonce, body, tag = stored[:_NONCE], stored[_NONCE:-_TAG], stored[-_TAG:]
        dec = Cipher(algorithms.SM4(self._enc), modes.GCM(nonce, tag)).decryptor()
        dec.authenticate_additional_data(self._aad(index))
        try:
            return dec.update(body) + dec.finalize()
        except InvalidTag as exc:
            raise ContentCorrupted(f"chunk {index} does not decrypt: it was altered") from exc
