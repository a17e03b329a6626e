"""docs/adapters.md followed to the letter: its files and commands, on real servers, as a new user.

Every block the guide marks `<!-- guide:NAME -->` is taken from the document itself, so the
guide cannot drift from what works.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from hub.bus import H_RECORD_KEY
from hub.home import Settings
from hub.ports import free_port
from hub.runtime import Hub
from hub.topology import HUB_STREAM, QUARANTINE_STREAM
from tests.connector_contract import eventually
from tests.test_adapters import read_stream

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "adapters.md"


def guide_blocks() -> dict[str, str]:
    text = GUIDE.read_text(encoding="utf-8")
    found = re.findall(r"<!-- guide:(\S+) -->\n```[a-z]*\n(.*?)```", text, flags=re.S)
    return dict(found)


def command(line: str) -> list[str]:
    """A `govhub …` line of the guide as this interpreter runs it."""
    args = line.split()
    assert args[0] == "govhub"
    return [sys.executable, "-m", "hub", *(a.strip("'") for a in args[1:])]


@pytest.fixture
async def market_db(pg_admin_dsn: str) -> AsyncIterator[str]:
    name = f"govhub_market_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def user_env(settings: Settings, dsn: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    env.update(
        GOVHUB_HOME=str(settings.home.root),
        GOVHUB_NATS_URL=settings.nats_url or "",
        GOVHUB_PG_DSN=settings.pg_dsn or "",
        AKQI_MARKET_DSN=dsn,
        COLUMNS="160",
        **extra,
    )
    return env


def run_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )


def start_cli(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


async def http_get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def test_the_guide_connects_a_fresh_table_and_a_folder_to_the_hub(
    hub: Hub, hub_settings: Settings, market_db: str, tmp_path: Path
) -> None:
    blocks = guide_blocks()
    env = user_env(hub_settings, market_db)
    (tmp_path / "market.toml").write_text(blocks["market.toml"], encoding="utf-8")

    checked = await asyncio.to_thread(run_cli, command(blocks["check"].strip()), tmp_path, env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "will add" in checked.stdout and "will be created" in checked.stdout

    port = free_port()
    run_line = blocks["run"].strip().replace("8490", str(port))
    adapter = start_cli(command(run_line), tmp_path, env)
    try:

        async def healthy() -> bool:
            try:
                return (await http_get(f"http://127.0.0.1:{port}/healthz"))[0] == 200
            except aiohttp.ClientError:
                return False

        await eventually(healthy, "the adapters to report healthy", timeout=120)

        conn = await asyncpg.connect(market_db)
        try:
            await conn.execute(blocks["outbox.sql"])
        finally:
            await conn.close()

        share = tmp_path / "market-share" / "drop"
        (share / "冬季食品安全检查通知.pdf.toml").write_text(blocks["sidecar"], encoding="utf-8")
        (share / "冬季食品安全检查通知.pdf.part").write_bytes(b"%PDF-1.7 " + b"x" * 5000)
        os.replace(share / "冬季食品安全检查通知.pdf.part", share / "冬季食品安全检查通知.pdf")
        sent = tmp_path / "market-share" / "sent" / "冬季食品安全检查通知.pdf.result.txt"
        await eventually(sent.exists, "the document to be sent", timeout=120)

        async def marked() -> bool:
            conn = await asyncpg.connect(market_db)
            try:
                unsent = await conn.fetchval(
                    "SELECT count(*) FROM outbox WHERE govhub_sent_at IS NULL"
                )
            finally:
                await conn.close()
            return int(unsent) == 0

        await eventually(marked, "both outbox rows settled", timeout=120)
        status, metrics = await http_get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        assert (
            'govhub_adapter_records_total{adapter="akqi-market-notices",outcome="delivered"} 1'
            in metrics
        )
    finally:
        adapter.send_signal(signal.SIGTERM)
        _out, err = await asyncio.to_thread(adapter.communicate, timeout=60)
    assert adapter.returncode == 0, err.decode()

    events = await read_stream(hub, HUB_STREAM, ["evt.akqi.market.>"])
    assert [d.event.record["title"] for d in events if d.event] == ["食品经营许可证公示"]
    (letter,) = await read_stream(hub, QUARANTINE_STREAM, ["quarantine.unmappable"])
    assert letter.envelope.headers[H_RECORD_KEY].startswith("public.outbox/")
    assert "body" in letter.envelope.headers["govhub-detail"]
    documents = await read_stream(hub, HUB_STREAM, ["doc.akqi.market.sent.*"])
    assert len(documents) == 1 and documents[0].event is not None
    assert documents[0].event.record["doc_number"] == "阿市监发〔2026〕8号"

    tail_events, tail_quarantine = blocks["see"].strip().splitlines()[:2]
    shown = await asyncio.to_thread(run_cli, command(tail_events), tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert "verified" in shown.stdout and "akqi.market" in shown.stdout
    shown = await asyncio.to_thread(run_cli, command(tail_quarantine), tmp_path, env)
    assert shown.returncode == 0, shown.stderr
    assert "unmappable" in shown.stdout


def install_as_package(blocks: dict[str, str], folder: Path) -> None:
    """What `pip install` leaves behind: the module and a dist-info with the entry points."""
    folder.mkdir()
    (folder / "akqi_market_adapter.py").write_text(blocks["akqi_market_adapter.py"], "utf-8")
    (folder / "test_akqi_market.py").write_text(blocks["test_akqi_market.py"], "utf-8")
    project = tomllib.loads(blocks["pyproject.toml"])["project"]
    info = folder / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    lines = []
    for group, entries in project["entry-points"].items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


def test_a_department_adapter_is_tested_in_memory_and_shipped_as_its_own_package(
    tmp_path: Path,
) -> None:
    blocks = guide_blocks()
    package = tmp_path / "akqi-market-govhub"
    install_as_package(blocks, package)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    env["PYTHONPATH"] = str(package)

    tested = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            str(package / "test_akqi_market.py"),
        ],
        cwd=package,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "1 passed" in tested.stdout

    listed = subprocess.run(
        [sys.executable, "-m", "hub", "adapter", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    names = {a["name"]: a for a in json.loads(listed.stdout)["adapters"]}
    assert names["akqi_market_announcements"]["schemas"] == ["gov.common.v1.Notice"]
    assert {"civil_assistance", "monthly_statistics", "office_documents", "events"} <= set(names)
