"""`govhub adapter check|run` as an operator meets them, and the health of running adapters."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from hub.cli import cli
from hub.home import Settings
from hub.integration.adapter import parse_adapter_file
from hub.integration.host import build, run_adapters
from hub.ports import free_port
from hub.runtime import Hub
from tests.connector_contract import eventually

CONFIG = """
[[adapters]]
name = "akto-civil"
adapter = "civil_assistance"
participant = "akto.civil"
[adapters.connector]
type = "postgres"
dsn = {{ env = "GOVHUB_TEST_CLI_DSN" }}
table = "outbox"

[[adapters]]
name = "artux-stats"
adapter = "monthly_statistics"
participant = "artux.stats"
[adapters.connector]
type = "http"
listen = "127.0.0.1:{port}"
hmac_secret = {{ env = "GOVHUB_TEST_CLI_SECRET" }}

[[adapters]]
name = "pref-office"
adapter = "office_documents"
participant = "pref.office"
[adapters.connector]
type = "folder"
path = "{folder}"
[adapters.options]
default_to = ["akto.office"]
"""


@pytest.fixture
def operator(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch, pg_dsn: str):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    monkeypatch.setenv("GOVHUB_TEST_CLI_DSN", pg_dsn)
    monkeypatch.setenv("GOVHUB_TEST_CLI_SECRET", "s3cret")

    def run(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(cli, ["--home", str(hub_settings.home.root), "adapter", *args])
        return result.exit_code, result.stdout, result.stderr

    return run


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "adapters.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_validates_connects_and_maps_samples_without_publishing(  # type: ignore[no-untyped-def]
    operator, tmp_path: Path
) -> None:
    config = write(tmp_path, CONFIG.format(port=free_port(), folder=tmp_path / "office"))
    code, out, err = operator("check", str(config), "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True
    by_name = {a["name"]: a for a in report["adapters"]}
    civil = by_name["akto-civil"]
    assert civil["sample"]["mapped"]["program"] == "DIBAO"  # the adapter's own sample
    assert civil["sample"]["fits"] is True and civil["sample"]["event_id"]
    stats = by_name["artux-stats"]
    assert "will listen on http://127.0.0.1" in stats["checks"][-2]["detail"]
    assert stats["sample"]["mapped"]["unit"] == "artux"
    assert by_name["pref-office"]["sample"]["mapped"]["recipients"] == ["akto.office"]


def test_check_fails_with_each_unreachable_system_named(  # type: ignore[no-untyped-def]
    operator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_CLI_DSN", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.delenv("GOVHUB_TEST_CLI_SECRET")
    config = write(tmp_path, CONFIG.format(port=free_port(), folder="/nonexistent/office"))
    code, out, _err = operator("check", str(config), "--json")
    assert code == 1
    report = json.loads(out)
    problems = {
        a["name"]: [c["detail"] for c in a["checks"] if not c["ok"]] for a in report["adapters"]
    }
    assert "cannot reach PostgreSQL" in problems["akto-civil"][0]
    assert "GOVHUB_TEST_CLI_SECRET is not set" in problems["artux-stats"][0]
    assert "neither /nonexistent/office nor its parent folder exists" in problems["pref-office"][0]


def test_a_config_mistake_is_one_sentence_naming_the_key(tmp_path: Path) -> None:
    text = CONFIG.format(port=1, folder="x").replace('table = "outbox"', 'tabel = "outbox"')
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "--home",
            str(tmp_path / "home"),
            "adapter",
            "check",
            str(write(tmp_path, text)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"govhub: {tmp_path / 'adapters.toml'}: "
        'adapters[0].connector.tabel: unknown key "tabel" (did you mean "table"?)'
    )
    assert not (tmp_path / "home" / "nats").exists()  # refused before anything started


async def test_health_says_which_adapter_is_degraded_and_why(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVHUB_TEST_CLI_DSN", f"postgresql://postgres@127.0.0.1:{free_port()}/x")
    monkeypatch.setenv("GOVHUB_TEST_CLI_SECRET", "s3cret")
    config = parse_adapter_file(
        CONFIG.format(port=free_port(), folder=tmp_path / "office"), tmp_path / "a.toml"
    )
    pipelines = [build(hub.parts, item) for item in config.adapters]
    stop = asyncio.Event()
    address = f"127.0.0.1:{free_port()}"
    task = asyncio.create_task(run_adapters(pipelines, stop, http=address))
    try:
        await eventually(
            lambda: [p.stats.state for p in pipelines] == ["degraded", "running", "running"],
            "the database adapter to be degraded and the others running",
        )
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{address}/healthz") as response:
                status, health = response.status, await response.json()
            async with session.get(f"http://{address}/metrics") as response:
                metrics = await response.text()
    finally:
        stop.set()
        stats = await asyncio.wait_for(task, 60)
    assert status == 503 and health["ok"] is False
    assert health["adapters"]["akto-civil"]["state"] == "degraded"
    assert "cannot reach PostgreSQL" in health["adapters"]["akto-civil"]["last_error"]
    assert health["adapters"]["artux-stats"]["state"] == "running"
    assert 'govhub_adapter_up{adapter="akto-civil"} 0' in metrics
    assert 'govhub_adapter_up{adapter="artux-stats"} 1' in metrics
    assert {s["state"] for s in stats.values()} == {"stopped"}
