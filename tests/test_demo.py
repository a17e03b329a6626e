"""`govhub demo` on a fresh home tells the whole story and leaves no server running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hub.embedded import EmbeddedServers, process_alive
from hub.home import Home


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
