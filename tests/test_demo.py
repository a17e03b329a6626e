"""`govhub demo` on a fresh home tells the whole story and leaves no server running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hub.embedded import EmbeddedServers
from hub.home import Home
from hub.processes import process_alive

pytestmark = pytest.mark.servers  # starts its own servers (embedded, through the CLI)


def test_demo_on_a_fresh_home_runs_every_chapter_and_stops_its_servers(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(tmp_path / "home"), "demo", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    events = report["chapters"]["events"]
    assert events["participants"] == 56
    assert len(events["published"]) == 6
    assert {e["source"].split(".")[0] for e in events["published"]} >= {
        "akto",
        "artux",
        "akqi",
        "wuqia",
        "pref",
    }
    for reader in ("pref.office", "artux.civil"):
        assert len(events["readers"][reader]) == 6
    assert sorted(r["reason"] for r in events["rejected"]) == ["bad_signature", "malformed_body"]
    assert report["summary"]
    state = json.loads((tmp_path / "home" / "run" / "servers.json").read_text())
    assert not any(process_alive(entry["pid"]) for entry in state.values() if entry.get("pid"))
    assert EmbeddedServers(Home(tmp_path / "home")).running() == {}


def test_demo_human_output_is_a_story_with_a_summary_table(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    result = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(tmp_path / "home"), "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "120"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "summary" in result.stdout
    assert "bad_signature" in result.stdout and "malformed_body" in result.stdout
    assert "verified by pref.office" in result.stdout
    # It ends by saying where the web console is and how to sign in to it.
    tail = result.stdout.rstrip().splitlines()[-4:]
    assert "web console: http://127.0.0.1:8490/console/" in tail[0]
    assert "console login --as pref.office" in tail[2]


COUNTIES = ["akqi.office", "akto.office", "artux.office", "wuqia.office"]


def _demo(home: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "--home", str(home), "demo", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _finished(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], str]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out), err


def assert_the_story_is_true(report: dict[str, Any]) -> None:
    """The figures a demo reports are the ones its own run produced, whatever ran before it
    on the home or runs beside it."""
    chapters = report["chapters"]
    events = chapters["events"]
    assert {r: len(seen) for r, seen in events["readers"].items()} == {
        "pref.office": 6,
        "artux.civil": 6,
    }
    assert sorted(r["reason"] for r in events["rejected"]) == ["bad_signature", "malformed_body"]
    summary = {row["item"]: row["value"] for row in report["summary"]}
    assert summary["documents dropped → inbox"] == "1"
    assert summary["circular answered (signed receipts)"] == "4 of 4"
    docs = chapters["documents"]
    circular = docs["circular"]
    assert circular["states"] == {c: "accepted" for c in COUNTIES} | {"wuqia.office": "rejected"}
    assert circular["delivered_by_agent"] == COUNTIES
    assert docs["report_states"] == {"pref.office": "delivered"}
    assert docs["confidential"]["opened_by"] == {"pref.office": True, "akto.office": True}
    audit = chapters["audit"]
    assert audit["verified_offline"]
    # The audit chapter counts the leaves of this run: each refused event once.
    quarantined = {k: n for k, n in audit["verdicts"].items() if k.startswith("quarantined")}
    assert quarantined == {"quarantined bad_signature": 1, "quarantined malformed_body": 1}


def test_two_demos_at_once_on_one_home_take_turns_and_both_tell_the_truth(tmp_path: Path) -> None:
    # Regression: run together they shared durable cursors, tables and folders and reported
    # `0 of 6 verified`; run again, the second counted the first run's documents and leaves.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    home = tmp_path / "home"
    first, second = _demo(home, env), _demo(home, env)
    reports = [_finished(first), _finished(second)]
    waited = [err for _, err in reports if "another demo is running on this home; waiting" in err]
    assert len(waited) == 1
    for report, _ in reports:
        assert_the_story_is_true(report)
    assert EmbeddedServers(Home(home)).running() == {}


def test_a_demo_beside_govhub_serve_and_its_agents_tells_the_truth(tmp_path: Path) -> None:
    # Regression: beside `govhub serve` the demo read document states before the service's
    # tracker had applied them (`1 of 4` answered), and two agents fetching one document into
    # one inbox crashed the service.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    home = tmp_path / "home"
    base = [sys.executable, "-m", "hub", "--home", str(home)]
    up = subprocess.run([*base, "up"], capture_output=True, text=True, env=env, timeout=300)
    assert up.returncode == 0, up.stderr
    agents = ",".join([*COUNTIES, "pref.office", "xj.office"])
    serve_log = tmp_path / "serve.log"
    with serve_log.open("w") as log:
        serve = subprocess.Popen(
            [*base, "serve", "--http", "127.0.0.1:0"],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**env, "GOVHUB_EXCHANGE_AGENT": agents},
        )
    try:
        report, _ = _finished(_demo(home, env))
        assert_the_story_is_true(report)
        assert serve.poll() is None, serve_log.read_text()[-2000:]
    finally:
        serve.terminate()
        serve.wait(timeout=60)
        subprocess.run([*base, "down"], capture_output=True, env=env, timeout=120)
    assert "serve.service.failed" not in serve_log.read_text()
