"""Failures as a person (or a CI gate) meets them through the real `govhub` command: the exit
status says what happened, and stderr holds one govhub sentence, never an internal error or
Python's own words."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from hub.home import Settings
from hub.ports import free_port

REPO = Path(__file__).resolve().parent.parent
PYTHON_WORDS = (
    "internal error",
    "Traceback",
    "<class",
    "Invalid isoformat",
    " at at ",
    "codec can't",
)


@dataclass
class Result:
    code: int
    out: str
    err: str


def govhub(
    home: Path, *args: str, settings: Settings | None = None, env: dict[str, str] | None = None
) -> Result:
    """Run `python -m hub` (what the `govhub` script runs) against `settings`' servers, or
    with no servers configured at all (then nothing may need them)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    environment["GOVHUB_LOG_LEVEL"] = "CRITICAL"
    if settings is not None:
        environment["GOVHUB_NATS_URL"] = settings.nats_url or ""
        environment["GOVHUB_PG_DSN"] = settings.pg_dsn or ""
    environment.update(env or {})
    done = subprocess.run(
        [sys.executable, "-m", "hub", "--home", str(home), *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=180,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


def one_sentence(result: Result, *fragments: str) -> str:
    """The error sentence of a failed command, checked: govhub's words, once, no Python."""
    lines = result.err.strip().splitlines()
    assert lines and lines[0].startswith("govhub: "), result.err
    assert len(lines) <= 2 and all(line.startswith(" ") for line in lines[1:]), result.err
    for words in PYTHON_WORDS:
        assert words not in result.err, result.err
    for fragment in fragments:
        assert fragment in lines[0], result.err
    return lines[0]


# -- input that is not UTF-8, or not JSON: refused before anything starts -------------------


NOT_UTF8 = b'{"title": "\xb9\xab\xb8\xe6", "body": "GBK, not UTF-8"}\n'
TOML_NOT_UTF8 = b'http = "\xb9\xab\xb8\xe6"\n[[adapters]]\n'


@pytest.mark.parametrize(
    ("name", "content", "args"),
    [
        ("notice.json", NOT_UTF8, ("publish", "--as", "akto.civil", "--schema",
                                   "gov.common.v1.Notice", "--data", "@{path}")),
        ("entry.json", NOT_UTF8, ("dir", "publish", "--as", "akto.civil", "--file", "{path}")),
        ("adapters.toml", TOML_NOT_UTF8, ("adapter", "check", "{path}")),
        ("gov.test.v1.Notice.avsc", NOT_UTF8, ("schema", "register", "{path}")),
    ],
    ids=["publish --data", "dir publish", "adapter check", "schema register"],
)  # fmt: skip
def test_a_file_that_is_not_utf8_is_refused_in_one_sentence_naming_it(
    tmp_path: Path, name: str, content: bytes, args: tuple[str, ...]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = govhub(tmp_path / "home", *(a.format(path=path) for a in args))
    assert result.code == 1
    one_sentence(result, str(path), "is not UTF-8 text: line 1 holds the byte 0xb9")
    assert not (tmp_path / "home" / "nats").exists()  # refused before any server started


def test_a_json_syntax_error_says_where_without_doubled_words(tmp_path: Path) -> None:
    result = govhub(
        tmp_path / "home", "publish", "--as", "akto.civil", "--schema", "gov.common.v1.Notice",
        "--data", '{"title": "unterminated',
    )  # fmt: skip
    assert result.code == 1
    one_sentence(
        result, "--data is not valid JSON: Unterminated string starting at line 1 column 11"
    )


def test_a_full_disk_under_stdout_is_one_sentence_and_exit_1(
    tmp_path: Path, full_device: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    with full_device.open("w") as stdout:
        done = subprocess.run(
            [sys.executable, "-m", "hub", "--home", str(tmp_path / "home"), "adapter", "list"],
            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
    result = Result(done.returncode, "", done.stderr)
    assert result.code == 1
    assert one_sentence(result) == "govhub: cannot write: no space left on the device"


# -- exit codes of adapter check and adapter run ---------------------------------------------

FAILING = """
[[adapters]]
name = "akto-civil"
adapter = "civil_assistance"
participant = "akto.civil"
[adapters.connector]
type = "postgres"
dsn = { env = "GOVHUB_TEST_NEVER_SET_DSN" }
table = "outbox"
"""


def test_adapter_check_with_a_problem_exits_1_through_the_command(
    hub_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "adapters.toml"
    config.write_text(FAILING, encoding="utf-8")
    for json_flag in ((), ("--json",)):
        result = govhub(
            hub_settings.home.root, "adapter", "check", str(config), *json_flag,
            settings=hub_settings,
        )  # fmt: skip
        assert result.code == 1, result.out + result.err
        one_sentence(result, "1 of 1 adapters cannot run as configured: akto-civil")
    [check] = [c for c in json.loads(result.out)["adapters"][0]["checks"] if not c["ok"]]
    assert check["detail"] == "the environment variable GOVHUB_TEST_NEVER_SET_DSN is not set"


def test_adapter_run_exits_1_when_every_adapter_failed_and_prints_the_failure_as_it_happens(
    hub_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "adapters.toml"
    config.write_text(FAILING, encoding="utf-8")
    result = govhub(hub_settings.home.root, "adapter", "run", str(config), settings=hub_settings)
    assert result.code == 1
    # Off a terminal each state change is one plain line: a log collector sees it.
    assert (
        "Z akto-civil failed: the environment variable GOVHUB_TEST_NEVER_SET_DSN is not set"
        in result.out.splitlines()[0]
    )
    one_sentence(result, "1 of 1 adapters failed (akto-civil: the environment variable")


def test_an_unreachable_database_is_named_in_words_not_errno(
    hub_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    config = tmp_path / "adapters.toml"
    config.write_text(
        FAILING.replace(
            '{ env = "GOVHUB_TEST_NEVER_SET_DSN" }', '{ env = "GOVHUB_TEST_CLOSED_DSN" }'
        ),
        encoding="utf-8",
    )
    dsn = f"postgresql://postgres@127.0.0.1:{port}/x"
    result = govhub(
        hub_settings.home.root, "adapter", "check", str(config), "--json",
        settings=hub_settings, env={"GOVHUB_TEST_CLOSED_DSN": dsn},
    )  # fmt: skip
    assert result.code == 1
    [check] = [c for c in json.loads(result.out)["adapters"][0]["checks"] if not c["ok"]]
    assert check["detail"] == f"cannot reach PostgreSQL at {dsn}: connection refused"


@pytest.mark.parametrize("http", ["127.0.0.1:99999", "nonsense", "127.0.0.1:"])
def test_a_bad_http_address_in_the_file_is_refused_by_check_naming_the_key(
    tmp_path: Path, http: str
) -> None:
    config = tmp_path / "adapters.toml"
    config.write_text(f'http = "{http}"\n' + FAILING, encoding="utf-8")
    result = govhub(tmp_path / "home", "adapter", "check", str(config))
    assert result.code == 1
    one_sentence(result, f"govhub: {config}: http: {http!r} is not HOST:PORT")
    assert not (tmp_path / "home" / "nats").exists()


def test_a_bad_http_option_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "adapters.toml"
    config.write_text(FAILING, encoding="utf-8")
    result = govhub(tmp_path / "home", "adapter", "run", str(config), "--http", "8490")
    assert result.code == 2
    assert "Invalid value for '--http': '8490' is not HOST:PORT" in result.err
    assert "internal error" not in result.err


def test_a_health_port_in_use_is_one_sentence_naming_the_address(
    hub_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "adapters.toml"
    config.write_text(FAILING, encoding="utf-8")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        result = govhub(
            hub_settings.home.root, "adapter", "run", str(config), "--http", f"127.0.0.1:{port}",
            settings=hub_settings,
        )  # fmt: skip
    assert result.code == 1
    one_sentence(
        result,
        f"cannot listen on 127.0.0.1:{port} for /healthz and /metrics: "
        "the address is already in use",
    )


WEBHOOK = """
[[adapters]]
name = "artux-stats"
adapter = "monthly_statistics"
participant = "artux.stats"
[adapters.connector]
type = "http"
listen = "127.0.0.1:{port}"
hmac_secret = {{ env = "GOVHUB_TEST_WEBHOOK_SECRET" }}
"""


def test_a_webhook_port_in_use_degrades_the_adapter_with_one_sentence_shown_while_it_runs(
    hub_settings: Settings, tmp_path: Path
) -> None:
    config = tmp_path / "adapters.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")}
    env.update(
        GOVHUB_NATS_URL=hub_settings.nats_url or "",
        GOVHUB_PG_DSN=hub_settings.pg_dsn or "",
        GOVHUB_LOG_LEVEL="CRITICAL",
        GOVHUB_TEST_WEBHOOK_SECRET="s3cret",
    )
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config.write_text(WEBHOOK.format(port=port), encoding="utf-8")
        proc = subprocess.Popen(
            [sys.executable, "-m", "hub", "--home", str(hub_settings.home.root),
             "adapter", "run", str(config)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert proc.stdout is not None
            # The line arrives while the command runs, not at its exit.
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            first = proc.stdout.readline() if ready else ""
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
    assert first.rstrip().endswith(
        f"Z artux-stats degraded: source unavailable: cannot listen on 127.0.0.1:{port} for "
        "the webhook of artux-stats: the address is already in use (another program, or "
        "another govhub, listens there)"
    ), first
    assert "artux-stats stopped" in out
    assert proc.returncode == 0, err  # degraded, then stopped: nothing failed


def test_the_checked_in_sample_config_maps_every_sample(hub_settings: Settings) -> None:
    # The department systems of ops/adapters/kezhou.toml do not exist here; the mappings do.
    config = REPO / "ops" / "adapters" / "kezhou.toml"
    result = govhub(
        hub_settings.home.root, "adapter", "check", str(config), "--json", settings=hub_settings
    )
    report = json.loads(result.out)
    samples = {a["name"]: a["sample"] for a in report["adapters"]}
    assert all(s is not None and s["fits"] for s in samples.values()), samples
    problems = [c for a in report["adapters"] for c in a["checks"] if not c["ok"]]
    assert {c["side"] for c in problems} == {"department"}
    assert result.code == 1  # those department systems are missing, and check says so


# -- output files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "words"),
    [
        ("missing/catalog.json", "the folder {tmp}/missing does not exist"),
        (".", "it is a folder; name a file inside it"),
        ("full", "no space left on the device"),
    ],
    ids=["missing folder", "a folder", "a full device"],
)
def test_dir_export_out_refuses_what_it_cannot_write_in_one_sentence(
    hub_settings: Settings, tmp_path: Path, full_device: Path, target: str, words: str
) -> None:
    out = str(full_device if target == "full" else tmp_path / target)
    result = govhub(hub_settings.home.root, "dir", "export", "--out", out, settings=hub_settings)
    assert result.code == 1
    one_sentence(result, f"cannot write {out}: " + words.format(tmp=tmp_path))
    assert stat.S_ISCHR(os.stat(full_device).st_mode)  # the device is still a device


def test_dir_export_keeps_output_as_a_hidden_alias_of_out(
    hub_settings: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "catalog.json"
    result = govhub(
        hub_settings.home.root, "dir", "export", "--output", str(out), settings=hub_settings
    )
    assert result.code == 0, result.err
    assert json.loads(out.read_text(encoding="utf-8"))["@context"]
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    helped = govhub(hub_settings.home.root, "dir", "export", "--help")
    assert "--out" in helped.out and "--output" not in helped.out
