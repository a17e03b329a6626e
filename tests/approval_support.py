"""Shared steps of the approval tests: one hub per module, a permit case with its materials,
hand-signed events."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from hub.approval.model import SCHEMA_OF_KIND, Kind, case_subject
from hub.approval.workflow import Approvals
from hub.envelope import Envelope, seal
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.conftest import Enrolled
from tests.servers import NatsServer
from tests.unchecked import publish_unchecked

PERMIT = "construction-permit"
LEAD = "pref.housing"
REVIEWERS = ("pref.drc", "pref.natres", "pref.emergency", "akto.natres")
COMPANY = "91653000MA78XQ0R4W"  # a 统一社会信用代码 with a valid check character


@pytest_asyncio.fixture(scope="module", loop_scope="module", name="hub")
async def module_hub(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str, enrolled: Enrolled
) -> AsyncIterator[Hub]:
    """A hub with the Kezhou scenario enrolled, shared by the tests of one module (each opens
    its own cases): setting one up costs seconds that every test would otherwise pay."""
    root = tmp_path_factory.mktemp("approval")
    server = NatsServer(root / "nats")
    shutil.copytree(enrolled.nats_store, server.store_dir)
    server.start()
    name = f"govhub_m_{secrets.token_hex(6)}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{enrolled.template}"')
    shutil.copytree(enrolled.home, root / "home")
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    try:
        async with open_hub(
            Settings(home=Home(root / "home"), nats_url=server.url, pg_dsn=dsn)
        ) as hub:
            yield hub
    finally:
        server.stop()
        await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def materials(folder: Path) -> dict[str, Path]:
    """The three required materials of a construction permit, as small files."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in ("application", "site-plan", "safety-plan"):
        path = folder / f"{name}.pdf"
        path.write_bytes(b"%PDF-1.7 " + os.urandom(2000))
        out[name] = path
    return out


async def open_permit(approvals: Approvals, folder: Path, **options: Any) -> dict[str, Any]:
    """Open a construction-permit case in Akto with every required material."""
    return await approvals.open(
        LEAD,
        PERMIT,
        title="阿克陶县第一中学教学楼建设项目施工许可",
        applicant_name="克州城建投资有限公司",
        applicant_code=options.pop("applicant_code", ""),
        unit="akto",
        documents=materials(folder),
        **options,
    )


async def publish_as(
    hub: Hub, signer: str, kind: Kind, case_id: str, record: dict[str, Any], *, on: str = ""
) -> Envelope:
    """Sign an event with `signer`'s key and publish it as is, on `on`'s subject if given:
    what a client that skips every check, or a forger holding only its own key, can send."""
    subject = case_subject(on or signer, kind, case_id)
    schema = hub.schemas.by_name(SCHEMA_OF_KIND[kind])
    env = seal(hub.keystore.current(signer), subject, schema.name, schema.encode(record))
    await publish_unchecked(hub.nc, env)
    return env


def opinion_record(
    case: dict[str, Any], reviewer: str, decision: str, **extra: Any
) -> dict[str, Any]:
    """An Opinion record about a case."""
    return {
        "case_id": case["case_id"],
        "opened_event_id": case["opened_event_id"],
        "reviewer": reviewer,
        "decision": decision,
        "reasons": extra.get("reasons", ""),
        "conditions": extra.get("conditions", []),
        "legal_basis": "",
    }


def review(view: dict[str, Any], reviewer: str) -> dict[str, Any]:
    """One reviewer's part of a case view."""
    return next(r for r in view["reviews"] if r["reviewer"] == reviewer)
