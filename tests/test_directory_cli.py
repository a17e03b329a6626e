"""`govhub dir ...` end to end: JSON on stdout, one-sentence errors, a DCAT export that parses
as JSON-LD, the `directory` service of `govhub serve`, and the benchmark at tiny N."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from click.testing import CliRunner
from pyld import jsonld

from hub.cli import cli
from hub.directory import agenttoken
from hub.directory.materializer import event_outcome
from hub.directory.store import search
from hub.directory.workflow import Directory
from hub.errors import GovhubError
from hub.home import Settings
from hub.runtime import Hub
from hub.serve import serve
from hub.topology import HUB_STREAM
from tests.directory_support import (
    POPULATION_SCHEMA,
    RECORDS,
    entry_file,
    register_population_schema,
    sharing,
)

DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"


@pytest.fixture
def govhub(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")

    def run(*args: str, ok: bool = True) -> Any:
        result = CliRunner().invoke(
            cli, ["--home", str(hub_settings.home.root), *args], catch_exceptions=not ok
        )
        if ok:
            assert result.exit_code == 0, result.output
            return json.loads(result.stdout) if "--json" in args else result.stdout
        assert isinstance(result.exception, GovhubError), result.exception
        return str(result.exception)

    schema_path = tmp_path / "akto.stats.v1.ResidentPopulation.avsc"
    schema_path.write_text(json.dumps(POPULATION_SCHEMA, ensure_ascii=False))
    run("schema", "register", str(schema_path), "--as", "akto.stats", "--json")
    return run


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_the_cli_walks_a_resource_from_publish_to_grant_to_received_data(
    govhub: Any, tmp_path: Path
) -> None:
    template = json.loads(govhub("dir", "template"))
    template.pop("data_items")
    published = govhub(
        "dir",
        "publish",
        "--as",
        "akto.stats",
        "--file",
        write(tmp_path, "e.json", template),
        "--json",
    )
    assert published["code"] == "101001-000017" and published["version"] == 1
    found = govhub("dir", "search", "人口", "--json")
    assert [r["code"] for r in found["results"]] == ["101001-000017"]
    assert found["facets"]["unit"] == {"akto": 1}
    offline = govhub("dir", "search", "人口", "--offline", "--json")
    assert offline["source"] == "kv" and offline["total"] == 1
    shown = govhub("dir", "show", "101001-000017", "--json")
    assert shown["entry"]["data_items"][0]["name"] == "township"
    req = govhub(
        "dir", "request", "101001-000017", "--as", "akto.civil", "--purpose", "低保核查",
        "--fields", "township,residents", "--until", "2099-12-31", "--json",
    )  # fmt: skip
    assert req["state"] == "pending"
    refused = govhub("dir", "receive", "101001-000017", "--as", "akto.civil", "--json", ok=False)
    assert "still pending" in refused
    listed = govhub("dir", "requests", "--as", "akto.stats", "--json")
    assert [r["state"] for r in listed["requests"]] == ["pending"]
    granted = govhub("dir", "grant", req["request_id"], "--as", "akto.stats", "--json")
    assert granted["state"] == "granted" and granted["valid_until"].startswith("2099-12-31T16:00")
    data = write(tmp_path, "records.json", RECORDS)  # type: ignore[arg-type]
    shared = govhub(
        "dir", "share", "101001-000017", "--as", "akto.stats", "--data", "@" + data, "--json"
    )
    assert shared["grantees"] == ["akto.civil"] and len(shared["events"]) == 2
    got = govhub("dir", "receive", "101001-000017", "--as", "akto.civil", "--json")
    assert got["records"][1]["data"] == {"township": "奥依塔克镇", "residents": 20417}


def test_cli_errors_are_one_sentence_and_name_the_field(govhub: Any, tmp_path: Path) -> None:
    bad = entry_file(secrecy="机密")
    result = govhub(
        "dir", "publish", "--as", "akto.stats", "--file", write(tmp_path, "b.json", bad), ok=False
    )
    assert "secrecy: only non-secret" in result
    govhub(
        "dir",
        "publish",
        "--as",
        "akto.stats",
        "--file",
        write(tmp_path, "g.json", entry_file()),
        "--json",
    )
    other = entry_file(provider="artux.stats")
    dup = govhub(
        "dir",
        "publish",
        "--as",
        "artux.stats",
        "--file",
        write(tmp_path, "d.json", other),
        ok=False,
    )
    assert "already used by akto.stats" in dup
    req = govhub(
        "dir", "request", "101001-000017", "--as", "akto.civil", "--purpose", "核查", "--json"
    )
    wrong = govhub("dir", "grant", req["request_id"], "--as", "akto.finance", ok=False)
    assert "akto.finance is not the provider" in wrong
    denied = govhub(
        "dir", "deny", req["request_id"], "--as", "akto.stats", "--reason", "超出用途", "--json"
    )
    assert denied["state"] == "denied"


def test_the_dcat_export_is_json_ld_with_every_open_dataset_and_its_mandatory_properties(
    govhub: Any, tmp_path: Path
) -> None:
    opened = entry_file(
        sharing=sharing("unconditional"), open={"public": True, "license": "CC-BY-4.0"}
    )
    govhub(
        "dir",
        "publish",
        "--as",
        "akto.stats",
        "--file",
        write(tmp_path, "o.json", opened),
        "--json",
    )
    closed = entry_file(code="101001-000018", title="内部人口台账")
    govhub(
        "dir",
        "publish",
        "--as",
        "akto.stats",
        "--file",
        write(tmp_path, "c.json", closed),
        "--json",
    )
    out = tmp_path / "catalog.jsonld"
    summary = json.loads(govhub("dir", "export", "--format", "dcat", "--output", str(out)))
    assert summary["datasets"] == 1
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["@context"]["dcat"] == DCAT and doc["@context"]["dct"] == DCT
    expanded = jsonld.expand(doc)
    [catalog] = [n for n in expanded if f"{DCAT}Catalog" in n.get("@type", [])]
    datasets = catalog[f"{DCAT}dataset"]
    assert len(datasets) == 1
    for ds in datasets:
        assert ds["@type"] == [f"{DCAT}Dataset"]
        for prop in (f"{DCT}identifier", f"{DCT}title", f"{DCT}description", f"{DCT}publisher"):
            assert ds.get(prop), prop
        for dist in ds[f"{DCAT}distribution"]:
            assert dist[f"{DCAT}accessURL"][0]["@id"].startswith("https://")
    quads = jsonld.to_rdf(doc, {"format": "application/n-quads"})
    assert f"<{DCAT}Dataset>" in quads and "阿克陶县常住人口统计" in quads


async def test_the_serve_service_materializes_without_any_catch_up_and_serves_search(
    hub: Hub,
) -> None:
    await register_population_schema(hub)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(hub.parts, only=["directory"], port=0, stop=stop))
    try:
        directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
        result = await directory.publish("akto.stats", entry_file(), settle=False)
        async with asyncio.timeout(60):
            while await event_outcome(hub.pool, result["event_id"]) is None:  # noqa: ASYNC110
                await asyncio.sleep(0.1)  # another task's progress in PostgreSQL: no event
        assert (await search(hub.pool, "常住人口")).total == 1
        # A command's catch-up while serve holds the writer lock waits for serve instead.
        assert await directory.catch_up() >= result["seq"]
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def directory_routes(hub: Hub) -> AsyncIterator[aiohttp.ClientSession]:
    """The directory service's routes on a free port, with resource 101001-000017 published
    by akto.stats and requested (unconditionally granted) by akto.civil."""
    from hub.directory.service import DirectoryService
    from hub.serve import make_app

    await register_population_schema(hub)
    directory = Directory(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)
    await directory.publish("akto.stats", entry_file(sharing=sharing("unconditional")))
    await directory.request("akto.civil", "101001-000017", "统计分析")
    app = make_app(
        [DirectoryService(hub.pool, hub.pg_dsn, hub.settings, hub.trust, hub.bus, hub.signer)]
    )
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            yield http
    finally:
        await runner.cleanup()


def bearer(path: Path) -> dict[str, str]:
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


async def test_the_service_routes_answer_search_and_the_sharing_agent(hub: Hub) -> None:
    stats, _ = agenttoken.issue(hub.settings.home, "akto.stats")
    civil, _ = agenttoken.issue(hub.settings.home, "akto.civil")
    async with directory_routes(hub) as http:
        async with http.get("/directory/search", params={"q": "人口"}) as resp:
            assert (await resp.json())["total"] == 1
        body = {"provider": "akto.stats", "records": RECORDS}
        share = "/directory/share/101001-000017"
        async with http.post(share, json=body, headers=bearer(stats)) as resp:
            assert resp.status == 200 and (await resp.json())["grantees"] == ["akto.civil"]
        body["provider"] = "akto.civil"
        async with http.post(share, json=body, headers=bearer(civil)) as resp:
            assert resp.status == 403, "akto.civil holds its own token but does not provide it"
        async with http.get("/directory/entries/999999-000") as resp:
            assert resp.status == 404


async def test_the_sharing_agent_signs_only_for_a_caller_holding_the_providers_token(
    hub: Hub,
) -> None:
    # Loopback is reachable by every program on the machine and by web pages in its browsers:
    # without the token, nothing is signed and nothing is published.
    home = hub.settings.home
    stats, _ = agenttoken.issue(home, "akto.stats")
    civil, _ = agenttoken.issue(home, "akto.civil")
    body = {"provider": "akto.stats", "records": RECORDS}
    share = "/directory/share/101001-000017"
    js = hub.nc.jetstream()
    async with directory_routes(hub) as http:
        before = (await js.stream_info(HUB_STREAM)).state.messages
        refused = {
            "no header": {},
            "another scheme": {"Authorization": "Basic " + stats.read_text().strip()},
            "a wrong token": {"Authorization": "Bearer " + "x" * 43},
            "another provider's token": bearer(civil),
        }
        for case, headers in refused.items():
            async with http.post(share, json=body, headers=headers) as resp:
                assert resp.status == 401, case
                assert resp.headers["WWW-Authenticate"].startswith("Bearer"), case
                assert "akto.stats" in (await resp.json())["error"], case
        # A cross-site form posts text/plain without a preflight: refused before parsing.
        async with http.post(
            share, data=json.dumps(body), headers={**bearer(stats), "Content-Type": "text/plain"}
        ) as resp:
            assert resp.status == 415
        assert (await js.stream_info(HUB_STREAM)).state.messages == before
        old = bearer(stats)
        agenttoken.issue(home, "akto.stats", rotate=True)
        async with http.post(share, json=body, headers=old) as resp:
            assert resp.status == 401, "a rotated token stops working without a restart"
        async with http.post(share, json=body, headers=bearer(stats)) as resp:
            assert resp.status == 200
        assert (await js.stream_info(HUB_STREAM)).state.messages == before + len(RECORDS)


async def test_without_a_token_file_the_agent_says_how_to_create_one(hub: Hub) -> None:
    body = {"provider": "akto.stats", "records": RECORDS}
    async with (
        directory_routes(hub) as http,
        http.post("/directory/share/101001-000017", json=body) as resp,
    ):
        assert resp.status == 401
        assert await resp.json() == {
            "error": "this home holds no sharing-agent token for akto.stats",
            "hint": "Create one with `govhub dir agent-token --as akto.stats`.",
        }


def test_agent_token_writes_a_private_file_and_never_prints_the_token(
    govhub: Any, hub_settings: Settings
) -> None:
    created = govhub("dir", "agent-token", "--as", "akto.stats", "--json")
    path = Path(created["path"])
    assert created == {"participant": "akto.stats", "path": str(path), "written": True}
    assert path.stat().st_mode & 0o777 == 0o600
    token = path.read_text().strip()
    assert len(token) >= 43
    again = govhub("dir", "agent-token", "--as", "akto.stats")
    assert "already exists" in again and token not in again
    rotated = govhub("dir", "agent-token", "--as", "akto.stats", "--rotate")
    assert "rotated" in rotated and path.read_text().strip() != token
    assert path.read_text().strip() not in rotated


def test_agent_token_refuses_a_participant_whose_key_is_not_in_the_home(govhub: Any) -> None:
    assert govhub("dir", "agent-token", "--as", "nobody.here", ok=False) == (
        "this home holds no key for nobody.here, so its serve cannot share as it"
    )
    assert "must be <unit>.<department>" in govhub("dir", "agent-token", "--as", "../x", ok=False)


def test_bench_directory_reports_search_latency_publish_rate_and_convergence(
    hub_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    result = CliRunner().invoke(
        cli,
        ["--home", str(hub_settings.home.root), "bench", "directory", "--entries", "300",
         "--queries", "40", "--json"],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["entries"] == 300
    assert report["publish"]["events_per_s"] > 0
    assert report["materialize"]["seconds"] > 0 and report["kv"]["keys"] == 300
    assert report["mirror"]["converged"] is True
    for side in ("govhub", "raw_like_scan"):
        assert report["search"][side]["p99_ms"] >= report["search"][side]["p50_ms"] > 0
