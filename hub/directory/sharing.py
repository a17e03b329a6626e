"""Enforced sharing: each data record is sealed to each valid grantee, and only it can read it.

The provider-side agent (`share`) runs where the provider's keys are (its `govhub serve`, an
adapter, or `govhub dir share`). For every record it looks up the grants valid *at that
moment* and publishes one `SharedData` event per grantee: the record projected to the fields
that grantee was granted, as JSON, encrypted with AES-256-GCM under a fresh key sealed with
HPKE to the grantee's registered encryption key (hub/crypto.py). The hub, county
relays and every other participant carry ciphertext only. Expiry and revocation therefore end
access for new data without anyone's cooperation: after them the agent seals nothing more to
that participant. A grantee reads with `receive`; anyone else gets a refusal naming why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from hub.collaborators import Bus, Signer, Trust
from hub.crypto import KeyWrap, Sealed, decrypt_as, encrypt_for
from hub.directory.events import SHARED_DATA_SCHEMA, new_id, share_filter, share_subject
from hub.directory.store import load_entry, valid_grants
from hub.errors import (
    DirectoryError,
    InputError,
    NoGrant,
    NotProvider,
    ResourceClosed,
)
from hub.jsonout import to_jsonable
from hub.topology import HUB_STREAM

log = structlog.get_logger("hub.directory.sharing")

MAX_RECORDS = 10_000


def share_context(code: str, request_id: str, record_id: str, grantee: str) -> bytes:
    """The AEAD and HPKE context of one sealed record: a ciphertext cannot be moved to another
    resource, grant, record or grantee and still open."""
    return f"govhub-dir-share-v1\n{code}\n{request_id}\n{record_id}\n{grantee}".encode()


async def share(
    pool: asyncpg.Pool,
    trust: Trust,
    signer: Signer,
    provider: str,
    code: str,
    records: Sequence[Mapping[str, Any]],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Seal each record to every grantee whose grant is valid now, and publish the events."""
    if not records:
        raise InputError("--data holds no records to share")
    if len(records) > MAX_RECORDS:
        raise InputError(f"share at most {MAX_RECORDS} records at a time")
    entry, status, _ = await load_entry(pool, code)
    if entry.provider != provider:
        raise NotProvider(f"only {entry.provider} shares the data of {code}, not {provider}")
    if status != "active":
        raise ResourceClosed(f"{code} is withdrawn; its data is no longer shared")
    schema = trust.schemas.by_name(entry.schema_name)
    for index, record in enumerate(records):
        try:
            schema.encode(record)
        except InputError as exc:
            raise InputError(f"record {index}: {exc}") from None
    grants = await valid_grants(pool, code, now or datetime.now(UTC))
    envs = []
    delivered: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    record_ids = []
    for record in records:
        record_id = new_id()
        record_ids.append(record_id)
        for grant in grants:
            participant = trust.participants.get(grant.grantee)
            if participant is None or participant.status != "active":
                skipped.append({"grantee": grant.grantee, "reason": "not an active participant"})
                continue
            fields = list(grant.fields or entry.item_names)
            projected = {name: record.get(name) for name in fields}
            plaintext = json.dumps(
                to_jsonable(projected), ensure_ascii=False, sort_keys=True
            ).encode()
            context = share_context(code, grant.request_id, record_id, grant.grantee)
            sealed = encrypt_for([participant], plaintext, context=context)
            wrap = sealed.wraps[0]
            payload = {
                "record_id": record_id,
                "code": code,
                "provider": provider,
                "grantee": grant.grantee,
                "request_id": grant.request_id,
                "fields": fields,
                "schema_name": entry.schema_name,
                "suite": wrap.suite,
                "key_id": wrap.key_id,
                "sealed_key": wrap.sealed,
                "ciphertext": sealed.ciphertext,
            }
            subject = share_subject(provider, code, grant.grantee)
            envs.append(signer.seal(provider, SHARED_DATA_SCHEMA, payload, subject=subject))
            delivered.append(
                {
                    "record_id": record_id,
                    "grantee": grant.grantee,
                    "request_id": grant.request_id,
                    "fields": fields,
                    "grant_event_id": grant.decision_event_id,
                }
            )
    # As the provider, through its own link in a federation (Signer.publisher_for).
    acks = await (await signer.publisher_for(provider)).publish_many(envs)
    for item, env, ack in zip(delivered, envs, acks, strict=True):
        item["event_id"], item["seq"] = env.event_id, ack.seq
    log.info("directory.shared", code=code, records=len(records), events=len(envs))
    return {
        "code": code,
        "records": len(records),
        "record_ids": record_ids,
        "grantees": sorted({g.grantee for g in grants}),
        "events": delivered,
        "skipped": skipped,
    }


async def _read_all(bus: Bus, subject_filter: str, timeout: float) -> list[Any]:
    consumer = bus.consumer(HUB_STREAM, None, [subject_filter], max_ack_pending=10_000)
    out = []
    deadline = time.monotonic() + timeout
    try:
        await consumer.start()
        while time.monotonic() < deadline:
            batch = await consumer.fetch_verified(500, timeout=0.3)
            for delivery in batch:
                out.append(delivery)
                await delivery.ack()
            if not batch and await consumer.pending() == 0:
                return out
        raise DirectoryError(f"reading {subject_filter} did not finish within {timeout:g} s")
    finally:
        await consumer.stop()


async def _grant_state(pool: asyncpg.Pool, code: str, grantee: str) -> dict[str, Any] | None:
    # A grant valid now wins over a newer request still pending (asking for more fields must
    # not cut off what is already granted); otherwise the newest request says why not.
    row = await pool.fetchrow(
        "SELECT request_id, state, valid_until, revoked_at, reason FROM directory_requests"
        " WHERE code = $1 AND requester = $2 ORDER BY (state = 'granted' AND"
        " (valid_until IS NULL OR valid_until > now())) DESC, requested_at DESC LIMIT 1",
        code,
        grantee,
    )
    return dict(row) if row is not None else None


async def receive(
    pool: asyncpg.Pool,
    bus: Bus,
    signer: Signer,
    grantee: str,
    code: str,
    *,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Decrypt every record of a resource sealed to `grantee`; refuse a participant without a
    valid grant, saying why and how many sealed records it cannot read."""
    entry, _, _ = await load_entry(pool, code)
    deliveries = await _read_all(bus, share_filter(code, entry.provider), timeout)
    mine = []
    others = 0
    for delivery in deliveries:
        assert delivery.event is not None
        rec = delivery.event.record
        if rec["grantee"] != grantee:
            others += 1
            continue
        sealed = Sealed(
            bytes(rec["ciphertext"]),
            (KeyWrap(grantee, rec["key_id"], rec["suite"], bytes(rec["sealed_key"])),),
        )
        context = share_context(code, rec["request_id"], rec["record_id"], grantee)
        plain = decrypt_as(grantee, signer.keystore, sealed, context=context)
        mine.append(
            {
                "record_id": rec["record_id"],
                "request_id": rec["request_id"],
                "fields": list(rec["fields"]),
                "data": json.loads(plain),
                "shared_at": delivery.event.fields.time,
                "seq": delivery.seq,
                "event_id": delivery.envelope.event_id,
            }
        )
    now = datetime.now(UTC)
    state = await _grant_state(pool, code, grantee)
    current = _state_now(state, now)
    if current != "granted":
        raise NoGrant(_refusal(grantee, code, state, current, others, len(mine)))
    assert state is not None
    return {
        "code": code,
        "grantee": grantee,
        "request_id": state["request_id"],
        "valid_until": state["valid_until"],
        "records": mine,
        "sealed_to_others": others,
    }


def _state_now(state: dict[str, Any] | None, now: datetime) -> str | None:
    if state is None:
        return None
    if state["state"] == "granted" and state["valid_until"] and state["valid_until"] <= now:
        return "expired"
    return str(state["state"])


def _refusal(
    grantee: str,
    code: str,
    state: dict[str, Any] | None,
    current: str | None,
    others: int,
    earlier: int,
) -> str:
    sealed = (
        f"; the {others} record(s) of {code} on the bus are sealed to their grantees and "
        f"{grantee} cannot decrypt them"
        if others
        else f"; nothing of {code} is sealed to {grantee}"
    )
    if state is None or current is None:
        return f"{grantee} holds no grant for {code} and never requested it{sealed}"
    request = state["request_id"]
    if current == "expired":
        until = state["valid_until"].isoformat()
        return (
            f"{grantee}'s grant {request} for {code} expired at {until}: nothing shared after "
            f"that is sealed to it ({earlier} earlier record(s) were); request access again"
        )
    if current == "revoked":
        return (
            f"{grantee}'s grant {request} for {code} was revoked ({state['reason']}): "
            "nothing shared after that is sealed to it"
        )
    if current == "pending":
        return f"{grantee}'s request {request} for {code} is still pending{sealed}"
    return f"{grantee}'s request {request} for {code} was denied ({state['reason']}){sealed}"
