"""`govhub bench suites`: what each crypto suite costs per event, side by side, no servers.

Signs and verifies the real v1 / v1-sm2 signing input of a Notice event (subject, headers and
the body digest), hashes bodies with SHA-256 and SM3, and seals a content key (HPKE X25519 vs
SM2 encryption), each for a fixed wall-clock budget, in one process on one core. The publish
and pipeline benchmarks take `--suite` for the same comparison end to end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from hub.bench.measure import machine
from hub.envelope import format_time, new_event_id, signing_input
from hub.suites import SUITES, Suite


def _rate(run: Callable[[], object], seconds: float) -> float:
    """Operations per second of `run`, measured for about `seconds` after a short warm-up."""
    for _ in range(20):
        run()
    count, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(50):
            run()
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - started)


def _suite_figures(suite: Suite, body: bytes, seconds: float) -> dict[str, Any]:
    private = suite.generate()
    public = suite.load_public(suite.public_bytes(private))
    message = signing_input(
        "evt.akto.civil.notice", new_event_id(), "akto.civil", "gov.common.v1.Notice",
        format_time(), body, suite,
    )  # fmt: skip
    signature = suite.sign(private, message)
    assert suite.verify(public, signature, message)
    megabyte = os.urandom(1 << 20)
    hash_rate = _rate(lambda: suite.hash(megabyte), seconds / 2)
    return {
        "suite": suite.name,
        "algorithm": suite.algorithm,
        "sign_per_s": round(_rate(lambda: suite.sign(private, message), seconds)),
        "verify_per_s": round(_rate(lambda: suite.verify(public, signature, message), seconds)),
        "keygen_per_s": round(_rate(suite.generate, seconds / 2)),
        "hash_mb_per_s": round(hash_rate, 1),
        "signature_bytes": len(signature),
        "public_key_bytes": len(suite.public_bytes(private)),
    }


def _wrap_figures(seconds: float) -> dict[str, Any]:
    """Sealing a 64-byte document secret to one recipient: HPKE X25519 vs SM2 encryption."""
    from hub import crypto, gmcrypto

    seed, secret, info = os.urandom(32), os.urandom(64), b"govhub-seal-v1\ndoc\nr\nk"
    x_public = crypto.public_key(
        crypto.SUITE_X25519, crypto.public_bytes(crypto.SUITE_X25519, seed)
    )
    hpke = crypto._HPKE[crypto.SUITE_X25519]
    sm2_public = gmcrypto.public_bytes(seed)
    return {
        "intl_hpke_x25519_seal_per_s": round(
            _rate(lambda: hpke.encrypt(secret, x_public, info), seconds / 2)
        ),
        "gm_sm2_wrap_per_s": round(
            _rate(lambda: gmcrypto.wrap(sm2_public, info, secret), seconds / 2)
        ),
    }


def bench_suites(size: int = 200, seconds: float = 2.0) -> dict[str, Any]:
    """Sign, verify, key generation and hashing rates of every suite, and key sealing."""
    body = os.urandom(size)
    return {
        "body_bytes": size,
        "seconds_per_measure": seconds,
        "suites": [_suite_figures(suite, body, seconds) for suite in SUITES.values()],
        "key_sealing": _wrap_figures(seconds),
        "libraries": "intl: cryptography (OpenSSL); gm: tongsuopy (Tongsuo) for SM2, "
        "cryptography for SM3 and SM4",
        "machine": machine(),
    }
