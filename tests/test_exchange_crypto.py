"""HPKE sealing to participants, chunk encryption, and encryption keys in the registry."""

from __future__ import annotations

import dataclasses
import json
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hub import crypto
from hub.errors import ContentCorrupted, NotRecipient, RegistryError
from hub.keys import KeyStore
from hub.participants import Participant, ParticipantKey
from hub.runtime import Hub


def _participant(store: KeyStore, pid: str) -> Participant:
    signer = store.generate(pid)
    now = datetime.now(UTC)
    key = ParticipantKey(signer.key_id, signer.public_bytes, now)
    return Participant(
        id=pid,
        unit=pid.split(".")[0],
        name=pid,
        keys=(key,),
        encryption_keys=crypto.new_registered_keys(store, signer, now),
    )


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", b"test passphrase")


@pytest.mark.parametrize("suite", crypto.SUITES)
def test_a_secret_sealed_to_recipients_opens_for_each_of_them_and_nobody_else(
    store: KeyStore, suite: str
) -> None:
    akto, akqi, outsider = (
        _participant(store, p) for p in ("akto.office", "akqi.office", "pref.finance")
    )
    wraps = crypto.seal_for([akto, akqi], b"k" * 64, context=b"doc-1", suite=suite)
    for p in (akto, akqi):
        secret, wrap = crypto.open_as(p.id, store, wraps, context=b"doc-1")
        assert secret == b"k" * 64 and wrap.suite == suite
    with pytest.raises(NotRecipient, match="nothing here is sealed to pref.finance"):
        crypto.open_as(outsider.id, store, wraps, context=b"doc-1")
    # A wrap lifted into another document's context does not open.
    with pytest.raises(ContentCorrupted, match="does not open"):
        crypto.open_as(akto.id, store, wraps, context=b"doc-2")


def test_a_wrap_handed_to_another_participant_does_not_open(store: KeyStore) -> None:
    akto, akqi = _participant(store, "akto.office"), _participant(store, "akqi.office")
    wrap = crypto.seal_for([akto], b"secret", context=b"c")[0]
    stolen = dataclasses.replace(wrap, recipient=akqi.id, key_id=akqi.encryption_keys[0].key_id)
    with pytest.raises(ContentCorrupted):
        crypto.open_as(akqi.id, store, [stolen], context=b"c")


def test_an_encryption_key_not_signed_by_its_owner_is_refused(store: KeyStore) -> None:
    akto = _participant(store, "akto.office")
    mallory = crypto.generate(crypto.SUITE_X25519)
    swapped = dataclasses.replace(
        akto.encryption_keys[0], public_key=mallory.public_key, key_id=mallory.key_id
    )
    forged = dataclasses.replace(akto, encryption_keys=(swapped,))
    with pytest.raises(RegistryError, match="not signed by its own key"):
        crypto.seal_for([forged], b"secret", context=b"c")


def test_a_participant_without_encryption_keys_cannot_receive_sealed_secrets(
    store: KeyStore,
) -> None:
    bare = dataclasses.replace(_participant(store, "akto.office"), encryption_keys=())
    with pytest.raises(RegistryError, match="no registered x25519 encryption key"):
        crypto.seal_for([bare], b"secret", context=b"c")


def test_small_payloads_encrypt_once_for_many_recipients(store: KeyStore) -> None:
    a, b = _participant(store, "akto.stats"), _participant(store, "akto.civil")
    sealed = crypto.encrypt_for([a, b], "人口数据".encode(), context=b"grant-7")
    assert crypto.decrypt_as(b.id, store, sealed, context=b"grant-7") == "人口数据".encode()
    tampered = crypto.Sealed(sealed.ciphertext[:-1] + b"\x00", sealed.wraps)
    with pytest.raises(ContentCorrupted):
        crypto.decrypt_as(a.id, store, tampered, context=b"grant-7")


def test_chunk_encryption_is_deterministic_and_binds_document_index_and_count() -> None:
    key = crypto.new_content_key()
    cipher = crypto.ChunkCipher(key, "doc-a", 3)
    sealed = cipher.encrypt(1, b"chunk one")
    assert cipher.encrypt(1, b"chunk one") == sealed  # a resumed send recognises it
    assert crypto.ChunkCipher(key, "doc-a", 3).decrypt(1, sealed) == b"chunk one"
    with pytest.raises(ContentCorrupted, match="chunk 2"):
        cipher.decrypt(2, sealed)  # moved to another index
    with pytest.raises(ContentCorrupted):
        crypto.ChunkCipher(key, "doc-b", 3).decrypt(1, sealed)  # moved to another document
    with pytest.raises(ContentCorrupted):
        crypto.ChunkCipher(key, "doc-a", 2).decrypt(1, sealed)  # document truncated


def test_encryption_key_seeds_are_encrypted_on_disk_and_private(
    store: KeyStore, tmp_path: Path
) -> None:
    p = _participant(store, "akto.office")
    for key in p.encryption_keys:
        path = tmp_path / "keys" / "akto.office" / f"enc-{key.key_id}.pem"
        assert path.read_text().startswith("-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(Exception, match="wrong passphrase"):
        KeyStore(tmp_path / "keys", b"wrong").encryption_seed(
            "akto.office", p.encryption_keys[0].key_id
        )


def test_registry_json_without_encryption_keys_still_loads(store: KeyStore) -> None:
    p = _participant(store, "akto.office")
    data = p.to_json()
    assert len(data["encryption_keys"]) == 3  # x25519, mlkem768-x25519, sm2
    assert Participant.from_json(json.loads(json.dumps(data))).encryption_keys == p.encryption_keys
    del data["encryption_keys"]
    assert Participant.from_json(data).encryption_keys == ()


async def test_enrolled_participants_hold_attested_keys_that_rotate_with_their_signing_key(
    hub: Hub,
) -> None:
    before = hub.participants.get("akto.office")
    assert before is not None
    assert {k.suite for k in before.encryption_keys} == set(crypto.SUITES)
    for key in before.encryption_keys:
        crypto.check_attestation(before, key)
    old_wraps = crypto.seal_for([before], b"before rotation", context=b"d")
    rotated = await hub.enrollment.rotate("akto.office")
    assert all(
        k.not_after is not None for k in rotated.encryption_keys if k in before.encryption_keys
    )
    current = rotated.encryption_key(crypto.SUITE_X25519)
    assert current is not None and current not in before.encryption_keys
    crypto.check_attestation(rotated, current)
    # Old private keys stay on the machine: documents sealed before the rotation still open.
    secret, _ = crypto.open_as("akto.office", hub.keystore, old_wraps, context=b"d")
    assert secret == b"before rotation"
