"""Embedded servers: start, reuse, crash recovery, port conflicts, no orphans."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hub.embedded import EmbeddedServers
from hub.home import Home
from hub.processes import process_alive

pytestmark = pytest.mark.servers  # starts its own servers (embedded, through the CLI)


def _govhub(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        check=False,
    )


def test_servers_start_once_are_reused_and_stop_without_orphans(tmp_path: Path) -> None:
    servers = EmbeddedServers(Home(tmp_path))
    first = servers.ensure()
    pids = {name: info.pid for name, info in first.items()}
    assert set(pids) == {"nats", "postgres"}
    again = EmbeddedServers(Home(tmp_path)).ensure()
    assert {name: info.pid for name, info in again.items()} == pids
    servers.stop_started()
    assert not any(process_alive(pid) for pid in pids.values())
    assert EmbeddedServers(Home(tmp_path)).running() == {}


def test_a_crashed_server_is_restarted_on_the_same_port(tmp_path: Path) -> None:
    servers = EmbeddedServers(Home(tmp_path))
    try:
        before = servers.ensure()["nats"]
        os.kill(before.pid, signal.SIGKILL)
        os.waitpid(before.pid, 0)
        after = servers.ensure()["nats"]
        assert after.pid != before.pid
        assert after.port == before.port
    finally:
        servers.stop_all()


def test_a_taken_port_makes_the_server_pick_a_free_one_and_record_it(tmp_path: Path) -> None:
    home = Home(tmp_path)
    servers = EmbeddedServers(home)
    port = servers.ensure(names=("nats",))["nats"].port
    servers.stop_all()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        try:
            moved = servers.ensure(names=("nats",))["nats"]
            assert moved.port != port
            recorded = json.loads(home.servers_file.read_text())["nats"]
            assert recorded["port"] == moved.port
        finally:
            servers.stop_all()


def test_up_status_down_through_the_command(tmp_path: Path) -> None:
    up = _govhub(tmp_path, "up", "--json")
    assert up.returncode == 0, up.stderr
    try:
        status = json.loads(_govhub(tmp_path, "status", "--json").stdout)
        assert status["running"] is True
        assert status["nats_url"].startswith("nats://127.0.0.1:")
        assert status["pg_dsn"].startswith("postgresql://")
        assert {n["name"] for n in status["nodes"]} == {"nats", "postgres"}
        assert all(n["pid"] > 0 and n["client_url"] for n in status["nodes"])
        published = _govhub(
            tmp_path,
            "publish",
            "--as",
            "akto.civil",
            "--schema",
            "gov.common.v1.Notice",
            "--data",
            '{"title": "t", "body": "b"}',
            "--json",
        )
        assert published.returncode == 0, published.stderr
        still = json.loads(_govhub(tmp_path, "status", "--json").stdout)
        assert [n["pid"] for n in still["nodes"]] == [n["pid"] for n in status["nodes"]]
    finally:
        down = _govhub(tmp_path, "down", "--json")
    assert sorted(json.loads(down.stdout)["stopped"]) == ["nats", "postgres"]
    assert not any(process_alive(n["pid"]) for n in status["nodes"])


def test_a_command_after_down_says_in_one_line_that_its_servers_are_temporary(
    tmp_path: Path,
) -> None:
    notice = (
        "govhub: started temporary nats and postgres servers for this command, as none was "
        f"running for {tmp_path}; they stop when it ends (`govhub up` keeps servers running)"
    )
    command = ("participant", "list", "--json")
    assert _govhub(tmp_path, "up").returncode == 0
    try:
        kept = _govhub(tmp_path, *command)
        assert kept.returncode == 0, kept.stderr
        assert "temporary" not in kept.stderr  # `up` servers are not temporary
    finally:
        assert _govhub(tmp_path, "down").returncode == 0
    after = _govhub(tmp_path, *command)
    assert after.returncode == 0, after.stderr
    assert after.stderr.strip() == notice
    assert json.loads(after.stdout)["count"] == 56  # the command still did its work
    assert EmbeddedServers(Home(tmp_path)).running() == {}


def test_up_federated_on_a_single_node_home_is_refused_and_strands_nothing(
    tmp_path: Path,
) -> None:
    # Regression: it started a second, empty hub beside the running one, and the home stayed
    # federated after `down`, so the single-node data could no longer be reached.
    up = _govhub(tmp_path, "up", "--json")
    assert up.returncode == 0, up.stderr
    try:
        before = json.loads(_govhub(tmp_path, "status", "--json").stdout)
        refused = _govhub(tmp_path, "up", "--federated", "--json")
        assert refused.returncode != 0 and refused.stdout == ""
        first = refused.stderr.splitlines()[0]
        assert "single-node" in first and "govhub down" in first and "--home" in first
        assert "Traceback" not in refused.stderr
        after = json.loads(_govhub(tmp_path, "status", "--json").stdout)
        assert after["topology"] == "single" and after["nodes"] == before["nodes"]
        assert not (tmp_path / "federation").exists()
    finally:
        down = _govhub(tmp_path, "down", "--json")
    assert sorted(json.loads(down.stdout)["stopped"]) == ["nats", "postgres"]
    # Stopped, the home still holds its single-node data: refused again, nothing started.
    again = _govhub(tmp_path, "up", "--federated")
    assert again.returncode != 0 and "single-node" in again.stderr
    assert json.loads(_govhub(tmp_path, "status", "--json").stdout)["nodes"] == []
