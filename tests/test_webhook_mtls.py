"""The webhook with mutual TLS instead of HMAC: only certificates of the CA, only allowed names."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from connectors.http import WebhookOptions, WebhookSource
from hub.integration.connector import ConnectorContext, Outcome
from tests.connector_contract import take


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    folder: Path, cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject if issuer else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    (folder / f"{cn}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{cn}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert, key


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    ca = _issue(tmp_path, "artux-ca", None)
    for cn in ("webhook-server", "artux-stats-system", "someone-else"):
        _issue(tmp_path, cn, ca)
    return tmp_path


def client_context(pki: Path, cn: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "artux-ca.crt"))
    if cn is not None:
        context.load_cert_chain(pki / f"{cn}.crt", pki / f"{cn}.key")
    return context


async def post(url: str, context: ssl.SSLContext) -> tuple[int, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json={"period": "2026-11"}, ssl=context) as response,
    ):
        return response.status, await response.json()


async def test_only_an_allowed_client_certificate_gets_through(pki: Path) -> None:
    options = WebhookOptions(
        listen="127.0.0.1:0",
        tls_cert=pki / "webhook-server.crt",
        tls_key=pki / "webhook-server.key",
        client_ca=pki / "artux-ca.crt",
        allowed_clients=("artux-stats-system",),
    )
    source = WebhookSource(options, ConnectorContext("t", "artux.stats"))
    await source.start()
    stream = source.deliveries()
    try:
        assert source.url.startswith("https://")
        reply = asyncio.create_task(post(source.url, client_context(pki, "artux-stats-system")))
        (delivery,) = await take(stream, 1)
        assert delivery.record.headers["client"] == "artux-stats-system"
        await delivery.ack(Outcome.done(event_id="e1"))
        assert await reply == (202, {"status": "accepted", "event_id": "e1"})

        status, body = await post(source.url, client_context(pki, "someone-else"))
        assert status == 401 and "someone-else" in body["error"]

        with pytest.raises(aiohttp.ClientError):
            await post(source.url, client_context(pki, None))
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
        await source.stop()
