"""Demo chapter: three departments join the hub without being rebuilt, through adapters.

Akto's civil-affairs case system publishes household-assistance decisions through an outbox in
its own PostgreSQL schema (one malformed decision is dead-lettered, the rest flow) and the
prefecture's register receives them; the prefecture office drops a document into a folder and
it arrives in Akto's inbox folder with a delivery receipt (a half-written file waits, a file
without recipients is refused with a reason); Artux's statistics system posts monthly figures
to a webhook (a forged and a malformed post are refused) and the prefecture statistics
bureau's API receives them. The adapter file is written to `<home>/run/demo/adapters.toml`,
so `govhub adapter check` can be run on it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.table import Table

from hub.demo import Chapter, Story
from hub.display import line
from hub.integration.adapter import load_plugin, parse_adapter_file
from hub.integration.host import build
from hub.integration.signing import signed_headers
from hub.ports import free_port
from hub.runtime import Hub
from hub.waits import poll

DSN_ENV = "GOVHUB_DEMO_DEPARTMENT_DSN"
SECRET_ENV = "GOVHUB_DEMO_STATS_SECRET"
WAIT_S = 90.0

CONFIG = """\
# The demo's adapters (written by `govhub demo`; try `govhub adapter check` on this file).

[[adapters]]
name = "akto-civil-outbox"
adapter = "civil_assistance"
participant = "akto.civil"
[adapters.connector]
type = "postgres"
dsn = {{ env = "{dsn_env}" }}
schema = "demo_akto_civil"
table = "outbox"
poll_interval = 1.0

[[adapters]]
name = "pref-civil-register"
adapter = "civil_assistance"
participant = "pref.civil"
direction = "from_hub"
[adapters.connector]
type = "postgres"
dsn = {{ env = "{dsn_env}" }}
schema = "demo_pref_civil"
table = "household_assistance"

[[adapters]]
name = "pref-office-drop"
adapter = "office_documents"
participant = "pref.office"
[adapters.connector]
type = "folder"
path = "{offices}/pref-office"
settle_seconds = 0.5
scan_interval = 0.2
[adapters.options]
default_to = ["akto.office"]

[[adapters]]
name = "akto-office-inbox"
adapter = "office_documents"
participant = "akto.office"
direction = "from_hub"
subjects = ["doc.*.*.sent.*"]
[adapters.connector]
type = "folder"
path = "{offices}/akto-office"

[[adapters]]
name = "artux-stats-webhook"
adapter = "monthly_statistics"
participant = "artux.stats"
[adapters.connector]
type = "http"
listen = "127.0.0.1:{port}"
path = "/figures"
hmac_secret = {{ env = "{secret_env}" }}

[[adapters]]
name = "pref-stats-api"
adapter = "monthly_statistics"
participant = "pref.stats"
direction = "from_hub"
[adapters.connector]
type = "http"
url = "{api}"
"""

# The prefecture register's table as its own system keeps it (the civil_assistance adapter's
# from_hub side writes into it). The demo plays that system, so it holds its own copy of the
# DDL instead of importing the adapter's: the hub reaches adapters only through entry points.
REGISTER_DDL = """
CREATE TABLE IF NOT EXISTS household_assistance (
    event_id text PRIMARY KEY,
    source text NOT NULL,
    case_id text NOT NULL,
    household_id text NOT NULL,
    township text NOT NULL,
    program text NOT NULL,
    action text NOT NULL,
    members int NOT NULL,
    monthly_amount_fen bigint NOT NULL,
    effective_from date NOT NULL,
    decided_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""

DECISIONS = [
    ("木吉乡", "低保", "新增", 3, "1245.00"),
    ("奥依塔克镇", "特困", "新增", 1, "980.00"),
    ("克孜勒陶乡", "低保", "调整", 4, "1660.00"),
    ("阿克陶镇", "临时救助", "新增", 2, "1500.00"),
    ("塔尔塔吉克族乡", "低保", "停保", 0, "0.00"),
]


def _sample(adapter: str) -> dict[str, Any]:
    """The native sample record of an installed adapter (through its entry point)."""
    sample = load_plugin(adapter, "demo").sample
    assert sample is not None, f"the {adapter} adapter has no sample record"
    return dict(sample)


async def _department_schemas(hub: Hub) -> None:
    """The two bureaus' own tables, recreated for each run (a demo needs a clean slate)."""
    async with hub.pool.acquire() as conn:
        await conn.execute(
            "DROP SCHEMA IF EXISTS demo_akto_civil CASCADE;"
            " DROP SCHEMA IF EXISTS demo_pref_civil CASCADE;"
            " CREATE SCHEMA demo_akto_civil; CREATE SCHEMA demo_pref_civil;"
            " CREATE TABLE demo_akto_civil.cases (case_no text PRIMARY KEY, township text,"
            " program text, action text, decided_at timestamptz)"
        )
        await conn.execute(f"SET search_path = demo_pref_civil; {REGISTER_DDL}; RESET search_path")


async def _case_system(hub: Hub, run: str) -> list[str]:
    """What the case system does per decision: its own row and the outbox row, one commit."""
    cases = []
    now = datetime.now(UTC).astimezone()
    rows = [*DECISIONS, ("木吉乡", "五保", "新增", 2, "800.00")]  # 五保 is not a programme
    native = _sample("civil_assistance")["payload"]
    async with hub.pool.acquire() as conn:
        for n, (township, program, action, persons, amount) in enumerate(rows, start=1):
            case_no = f"AKT-{run}-{n:03d}"
            payload = dict(
                native,
                case_no=case_no,
                hh_code=f"AKT-{n:05d}",
                township=township,
                program=program,
                action=action,
                persons=persons,
                amount_yuan=amount,
                approved_at=now.isoformat(),
            )
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO demo_akto_civil.cases VALUES ($1, $2, $3, $4, $5)",
                    case_no,
                    township,
                    program,
                    action,
                    now,
                )
                await conn.execute(
                    "INSERT INTO demo_akto_civil.outbox (aggregatetype, aggregateid, type, payload)"
                    " VALUES ('case', $1, 'HouseholdAssistance', $2::jsonb)",
                    case_no,
                    json.dumps(payload, ensure_ascii=False),
                )
            cases.append(case_no)
        await conn.execute(
            "INSERT INTO demo_akto_civil.outbox (aggregatetype, aggregateid, type, payload)"
            " VALUES ('case', $1, 'CaseNoteAdded', '{\"text\": \"入户核查\"}')",
            cases[0],
        )
    return cases


def _drop_documents(offices: Path, run: str) -> dict[str, bytes]:
    """The office's scanner and clerks at work; returns the documents that can go out."""
    drop = offices / "pref-office" / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "冬季安全生产通知.pdf.toml").write_text(
        'title = "关于做好冬季安全生产工作的通知"\n'
        'doc_number = "克政办发〔2026〕12号"\nurgency = "urgent"\n',
        encoding="utf-8",
    )
    body = f"%PDF-1.7\n关于做好冬季安全生产工作的通知 ({run})\n".encode() * 200
    (drop / "冬季安全生产通知.pdf.part").write_bytes(body)
    os.replace(drop / "冬季安全生产通知.pdf.part", drop / "冬季安全生产通知.pdf")
    (drop / "会议纪要.docx.toml").write_text('title = "会议纪要"\nto = []\n', encoding="utf-8")
    (drop / "会议纪要.docx").write_bytes(b"PK minutes")
    (drop / "扫描中.pdf.part").write_bytes(b"%PDF half written")  # the scanner is not done
    return {"冬季安全生产通知.pdf": body}


def _arrived(inbox: Path, dropped: dict[str, bytes]) -> list[str]:
    """The dropped documents that are in the inbox with this run's content.

    The inbox adapter also delivers any earlier document addressed to akto.office that it has
    not delivered yet (from an earlier demo run on this home): those are not this run's.
    """
    arrived = []
    for name, body in dropped.items():
        with contextlib.suppress(OSError):
            if (inbox / name).read_bytes() == body:
                arrived.append(name)
    return sorted(arrived)


class StatsApi:
    """The prefecture statistics bureau's own API, receiving figures from the hub."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.keys: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        self.received.append(await request.json())
        return web.json_response({"stored": True}, status=201)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/monthly-figures", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", port).start()
        self.url = f"http://127.0.0.1:{port}/api/monthly-figures"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


async def _post(url: str, body: bytes, secret: str, key: str) -> tuple[int, dict[str, Any]]:
    headers = {**signed_headers(secret.encode(), body), "Idempotency-Key": key}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status, await r.json()


async def _statistics_system(url: str, secret: str) -> list[dict[str, Any]]:
    """Artux's statistics system posts its November release (and a re-post, as systems do)."""
    release = dict(
        _sample("monthly_statistics"), published_at=datetime.now(UTC).astimezone().isoformat()
    )
    body = json.dumps(release, ensure_ascii=False).encode()
    key = uuid.uuid4().hex
    posts = []
    for what, data, sig, idem in (
        ("monthly release", body, secret, key),
        ("the same release re-posted", body, secret, key),
        ("signed with a wrong key", body, "not-the-secret", uuid.uuid4().hex),
        (
            "period 2026-13",
            json.dumps({**release, "period": "2026-13"}).encode(),
            secret,
            uuid.uuid4().hex,
        ),
    ):
        status, answer = await _post(url, data, sig, idem)
        posts.append(
            {
                "post": what,
                "status": status,
                "event_id": answer.get("event_id", ""),
                "error": answer.get("error", ""),
            }
        )
    return posts


async def _until(test: Callable[[], bool], what: str) -> None:
    if not await poll(test, timeout=WAIT_S, every=0.1):
        raise TimeoutError(f"the adapters demo timed out waiting for {what}")


async def run(hub: Hub, story: Story) -> dict[str, Any]:
    """Run the six adapter instances of the three departments and report what they did."""
    run_id = datetime.now(UTC).strftime("%H%M%S")
    demo_dir = hub.settings.home.run / "demo"
    offices = demo_dir / "offices"
    shutil.rmtree(offices, ignore_errors=True)
    offices.mkdir(parents=True)
    secret = uuid.uuid4().hex
    os.environ[DSN_ENV] = hub.pg_dsn
    os.environ[SECRET_ENV] = secret
    api = StatsApi()
    await api.start()
    port = free_port()
    text = CONFIG.format(
        dsn_env=DSN_ENV, secret_env=SECRET_ENV, offices=offices, port=port, api=api.url
    )
    config_path = demo_dir / "adapters.toml"
    config_path.write_text(text, encoding="utf-8")
    await _department_schemas(hub)
    pipelines = {
        item.name: build(hub.parts, item) for item in parse_adapter_file(text, config_path).adapters
    }
    stop = asyncio.Event()
    tasks = [asyncio.create_task(p.run(stop)) for p in pipelines.values()]
    try:
        await _until(lambda: all(p.stats.state == "running" for p in pipelines.values()), "start")
        cases = await _case_system(hub, run_id)
        dropped = _drop_documents(offices, run_id)
        inbox = offices / "akto-office" / "inbox"
        posts = await _statistics_system(f"http://127.0.0.1:{port}/figures", secret)
        p = pipelines
        await _until(lambda: p["akto-civil-outbox"].stats.delivered >= len(DECISIONS), "civil")
        await _until(lambda: p["akto-civil-outbox"].stats.dead_lettered >= 1, "dead letter")
        await _until(lambda: p["pref-civil-register"].stats.delivered >= len(DECISIONS), "register")
        await _until(lambda: p["pref-office-drop"].stats.delivered >= 1, "the document")
        await _until(lambda: p["pref-office-drop"].stats.dead_lettered >= 1, "refused file")
        await _until(lambda: _arrived(inbox, dropped) == sorted(dropped), "the inbox")
        await _until(lambda: len(api.received) >= 1, "the statistics API")
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        await api.stop()
    register = await hub.pool.fetch(
        "SELECT case_id, township, program, action, monthly_amount_fen, source"
        " FROM demo_pref_civil.household_assistance ORDER BY case_id"
    )
    refused = await hub.pool.fetch(
        "SELECT aggregateid, govhub_error FROM demo_akto_civil.outbox"
        " WHERE govhub_error IS NOT NULL"
    )
    root = offices
    return {
        "config": str(config_path),
        "adapters": {name: pl.stats.to_json() for name, pl in pipelines.items()},
        "civil": {
            "cases": cases,
            "register": [dict(r) for r in register],
            "dead_letters": [dict(r) for r in refused],
        },
        "office": {
            "sent": _listing(root / "pref-office" / "sent"),
            "failed": {
                p.name.removesuffix(".reason.txt"): p.read_text(encoding="utf-8").splitlines()[-1]
                for p in (root / "pref-office" / "failed").glob("*.reason.txt")
            },
            "waiting": _listing(root / "pref-office" / "drop"),
            "inbox": _listing(root / "akto-office" / "inbox"),
            "arrived": _arrived(root / "akto-office" / "inbox", dropped),
        },
        "stats": {"posts": posts, "api_received": api.received, "api_keys": api.keys},
    }


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def render(console: Console, facts: dict[str, Any]) -> None:
    """The chapter for a person."""
    civil = facts["civil"]
    console.print(
        "阿克陶县民政局's case system writes each decision and an outbox row in one transaction; "
        "the adapter signs them as akto.civil, the prefecture register receives them:"
    )
    table = Table("case", "township", "programme", "action", "amount (fen)", "from")
    for row in civil["register"]:
        table.add_row(
            row["case_id"],
            row["township"],
            row["program"],
            row["action"],
            f"{row['monthly_amount_fen']:,}",
            row["source"],
        )
    console.print(table)
    for row in civil["dead_letters"]:
        console.print(line(f"dead-lettered {row['aggregateid']}: ", (row["govhub_error"], "red")))
    office = facts["office"]
    console.print(
        "州政府办公室 drops files into a folder; akto.office's inbox folder receives them:"
    )
    files = Table("folder", "files")
    files.add_row("pref-office/sent", "\n".join(office["sent"]))
    files.add_row("pref-office/failed", "\n".join(f"{k}: {v}" for k, v in office["failed"].items()))
    files.add_row("pref-office/drop (waiting)", "\n".join(office["waiting"]))
    files.add_row("akto-office/inbox", "\n".join(office["inbox"]))
    console.print(files)
    console.print("阿图什市统计局's statistics system posts to its webhook:")
    posts = Table("post", "answer", "event id / reason")
    for post in facts["stats"]["posts"]:
        posts.add_row(
            post["post"], str(post["status"]), post.get("event_id") or post.get("error", "")
        )
    console.print(posts)
    console.print(
        f"州统计局's API received {len(facts['stats']['api_received'])} release(s), each with an "
        f"Idempotency-Key. Adapter file: {facts['config']}"
    )


def summary(facts: dict[str, Any]) -> list[tuple[str, str]]:
    """Summary rows."""
    adapters = facts["adapters"]
    return [
        ("adapters run (3 departments)", str(len(adapters))),
        ("outbox rows → events → register", str(len(facts["civil"]["register"]))),
        ("adapter dead letters", str(sum(a["dead_lettered"] for a in adapters.values()))),
        ("documents dropped → inbox", str(len(facts["office"]["arrived"]))),
        ("webhook answers", " ".join(str(p["status"]) for p in facts["stats"]["posts"])),
    ]


CHAPTER = Chapter(
    name="adapters",
    title="Department systems join through adapters (部门系统接入)",
    run=run,
    render=render,
    summary=summary,
)
