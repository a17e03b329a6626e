"""The directory and the adapters on real leaf nodes: a participant's steps go through its own
county's node, its county keeps a searchable copy of the directory, and a step taken while
the county is cut off is queued there and applied at the hub after reconnect.

One topology serves the whole module; a test that cuts an uplink restores it before it ends.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hub.directory.events import share_subject
from hub.directory.mirror import kv_documents
from hub.directory.sharing import receive, share
from hub.directory.store import get_request, search, search_documents
from hub.directory.workflow import Directory
from hub.federation.arrival import wait_at_hub
from hub.home import HOME_ENV, PG_DSN_ENV
from hub.integration.bridge import EventSink
from hub.integration.connector import Record, Verdict
from tests.directory_support import RECORDS, entry_file, register_population_schema
from tests.federation import NOTICE, Topology, federated, scratch_database, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

CODE = "101001-000017"
PROVIDER = "akto.stats"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def federation(
    tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str
) -> AsyncIterator[Topology]:
    """The Kezhou federation with akto.stats's conditional resource published from its county."""
    async with (
        scratch_database(pg_admin_dsn) as dsn,
        federated(tmp_path_factory.mktemp("services"), dsn) as topology,
    ):
        await register_population_schema(topology.hub)
        hub = topology.hub
        directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
        topology.published = await directory.publish(  # type: ignore[attr-defined]
            PROVIDER, entry_file()
        )
        yield topology


async def test_a_county_provider_publishes_through_its_own_county_and_the_hub_directory_applies_it(
    federation: Topology,
) -> None:
    published = federation.published  # type: ignore[attr-defined]
    assert published["stream"] == "GOV_AKTO"  # acknowledged by its county, not by the hub
    assert "state" not in published  # settled: applied at the hub before the command returned
    found = await search(federation.hub.pool, "人口")
    assert CODE in [hit["code"] for hit in found.results]


async def test_a_county_searches_its_own_copy_of_the_directory_with_its_uplink_cut(
    federation: Topology,
) -> None:
    top = federation
    link = await top.hub.link("akto.civil")
    assert link is not None

    async def mirrored() -> bool:
        return CODE in {d["code"] for d in await kv_documents(link.nc)}

    await wait_for(mirrored, timeout=60, what="the county's mirror of the directory")
    top.cut("akto")
    try:
        offline = search_documents(await kv_documents(link.nc), "人口")
        assert [hit["code"] for hit in offline.results] == [CODE]
        # What a person types at the county, through the CLI, against the same topology.
        home = top.hub.settings.home.root
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
        env.update({HOME_ENV: str(home), PG_DSN_ENV: top.hub.pg_dsn})
        command = ["dir", "search", "人口", "--offline", "--as", "akto.civil", "--json"]
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "hub", *command],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["source"] == "kv" and [h["code"] for h in answer["results"]] == [CODE]
    finally:
        top.restore("akto")


async def test_a_request_made_while_the_county_is_cut_off_is_queued_then_answered_after_reconnect(
    federation: Topology,
) -> None:
    top = federation
    directory = Directory(
        top.hub.pool,
        top.hub.pg_dsn,
        top.hub.settings,
        top.hub.trust,
        top.hub.bus,
        top.hub.signer,
        arrival_wait_s=1.0,
    )
    top.cut("akqi")
    try:
        queued = await directory.request("akqi.civil", CODE, "低保对象核查")
    finally:
        top.restore("akqi")
    assert queued["state"] == "queued" and queued["stream"] == "GOV_AKQI"
    request_id = queued["request_id"]
    assert await wait_at_hub(top.hub.nc, [(queued["subject"], queued["event_id"])], timeout=60)
    await directory.catch_up()
    assert (await get_request(top.hub.pool, request_id))["state"] == "pending"

    granted = await Directory(
        top.hub.pool, top.hub.pg_dsn, top.hub.settings, top.hub.trust, top.hub.bus, top.hub.signer
    ).grant(PROVIDER, request_id)
    assert granted["state"] == "granted" and granted["stream"] == "GOV_AKTO"
    shared = await share(top.hub.pool, top.hub.trust, top.hub.signer, PROVIDER, CODE, RECORDS)
    subject = share_subject(PROVIDER, CODE, "akqi.civil")
    arrivals = [(subject, e["event_id"]) for e in shared["events"][-1:]]
    assert await wait_at_hub(top.hub.nc, arrivals, timeout=60)
    got = await receive(top.hub.pool, top.hub.bus, top.hub.signer, "akqi.civil", CODE)
    assert [r["data"]["township"] for r in got["records"]] == [r["township"] for r in RECORDS]


async def test_an_adapter_publishes_as_its_department_through_its_own_county(
    federation: Topology,
) -> None:
    hub = federation.hub
    sink = EventSink(hub.trust, hub.bus, hub.signer, "akto.civil")
    await sink.start()
    try:
        [outcome] = await sink.send(
            [Record(key="row-1", kind=NOTICE, value={"title": "县级通知", "body": "b"})]
        )
    finally:
        await sink.stop()
    assert outcome.verdict is Verdict.DONE and outcome.ref.startswith("GOV_AKTO#")
