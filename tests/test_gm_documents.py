"""Confidential documents in the gm suite: SM2 key wrap and SM4-GCM, opened with gmssl alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hub import crypto, gmcrypto
from hub.errors import ContentCorrupted, NotRecipient
from hub.exchange.fetch import Fetcher
from hub.exchange.ledger import verified_document
from hub.exchange.model import Classification
from hub.exchange.send import doc_context
from hub.exchange.store import chunk_subject, keys_subject
from hub.runtime import Hub
from hub.suites import sm3
from tests.gm_support import gmssl_sm2_decrypt, gmssl_sm3, gmssl_sm4_gcm_open
from tests.test_exchange_transfer import CHUNK, announce, make_file, request

SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123


async def _stored(hub: Hub, stream: str, subject: str) -> bytes:
    msg = await hub.nc.jetstream().get_msg(stream, subject=subject, direct=True)
    return bytes(msg.data)


async def test_a_gm_confidential_document_opens_with_gmssl_and_with_the_hub(
    hub: Hub, tmp_path: Path
) -> None:
    source = make_file(tmp_path, 3 * CHUNK + 77)
    to = ("akto.office", "akqi.office")
    doc_id = await announce(
        hub, request(source, to=to, classification=Classification.CONFIDENTIAL, suite="sm2")
    )
    doc = await verified_document(hub.pool, hub.trust, doc_id)
    enc = doc.manifest.encryption
    assert enc is not None and (enc.suite, enc.cipher) == ("sm2", "SM4-GCM")
    store = doc.manifest.store
    wraps = crypto.wraps_from_bytes(await _stored(hub, store.stream, keys_subject(store)))
    assert {w.suite for w in wraps} == {"sm2"}
    plain = source.read_bytes()
    for recipient in to:
        wrap = next(w for w in wraps if w.recipient == recipient)
        seed = hub.keystore.encryption_seed(recipient, wrap.key_id)
        d = int.from_bytes(seed, "big") % (SM2_N - 2) + 1
        opened = gmssl_sm2_decrypt(d, wrap.sealed)  # gmssl alone: C1 C3 C2 from the DER form
        info = b"\n".join((b"govhub-seal-v1", doc_context(doc_id), recipient.encode(),
                           wrap.key_id.encode()))  # fmt: skip
        assert opened[:32] == gmssl_sm3(info)
        content_key, plain_digest = opened[32:64], opened[64:]
        assert len(plain_digest) == 32
        k_enc = content_key[:16]
        rebuilt = b""
        for index in range(doc.manifest.chunk_count):
            chunk = await _stored(hub, store.stream, chunk_subject(store, index))
            aad = f"govhub-doc-chunk-v1\n{doc_id}\n{index}\n{doc.manifest.chunk_count}".encode()
            rebuilt += gmssl_sm4_gcm_open(k_enc, chunk[:12], chunk[12:], aad)
        assert rebuilt == plain
        out = tmp_path / f"{recipient}.bin"
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(doc, recipient, out)
        assert out.read_bytes() == plain
    with pytest.raises(NotRecipient):
        await Fetcher(hub.trust, hub.bus, hub.signer).fetch(
            doc, "pref.finance", tmp_path / "nosy.bin"
        )


def test_sm2_wraps_are_bound_to_their_document_and_refuse_tampering() -> None:
    seed = os.urandom(32)
    public = gmcrypto.public_bytes(seed)
    sealed = gmcrypto.wrap(public, b"doc-1", b"k" * 64)
    assert gmcrypto.unwrap(seed, b"doc-1", sealed) == b"k" * 64
    with pytest.raises(ValueError, match="bound to another"):
        gmcrypto.unwrap(seed, b"doc-2", sealed)
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    with pytest.raises(ValueError):
        gmcrypto.unwrap(seed, b"doc-1", bytes(tampered))


def test_sm4_chunks_are_deterministic_per_content_and_never_reuse_a_nonce() -> None:
    key = os.urandom(32)
    cipher = gmcrypto.SM4ChunkCipher(key, "doc", 3)
    a = cipher.encrypt(0, b"same")
    assert a == cipher.encrypt(0, b"same")  # a resumed send reproduces what it stored
    assert a[:12] != cipher.encrypt(0, b"diff")[:12]  # other content, other nonce
    assert a[:12] != cipher.encrypt(1, b"same")[:12]
    assert cipher.decrypt(0, a) == b"same"
    with pytest.raises(ContentCorrupted):
        cipher.decrypt(1, a)  # moved to another index
    assert sm3(b"abc") == gmssl_sm3(b"abc")
