"""Another department's data prints literally in every human-readable command.

One hub is filled, through the same commands departments use, with values taken from a table
of hostile and unusual text (rich markup, emoji codes, terminal escapes, carriage returns,
bidirectional overrides, C1 controls, format strings, very long and empty strings) in every
field a person later reads: participant names, schema docs, notice payloads, dead letters from
an external system, document titles, numbers, file names and reasons, directory titles, labels,
purposes and queries. Then every command that shows those fields runs without `--json` and must
exit 0, print no traceback and no `internal error`, show each value as `hub.display.literal`
renders it, and never let a control or bidi character reach the terminal.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.audit.service import AuditLog
from hub.cli import main
from hub.display import console, literal
from hub.home import Home, Settings
from hub.runtime import open_hub
from tests.directory_support import POPULATION_SCHEMA, entry_file, sharing
from tests.servers import NatsServer

# One hub for the module: its workers must not split it (make test runs --dist loadgroup).
pytestmark = pytest.mark.xdist_group("hostile_display")

HOSTILE = [
    "[/]",
    "[red]红色[/red] [bold]粗体 [link=http://evil.example]点此[/link]",
    ":warning: :cn: :smile:",
    "\x1b[31m红\x1b[0m\x1b]0;pwned\x07 \x1b[2J",
    "一百元\r十万元",
    "invoice\u202efdp.exe",
    "\u2067عربي\u2069 \u200f\u2066x\u2069",
    "\x08\x08\x7f\x9b\x85",
    "%s {0} {title} <script>alert(1)</script> &amp; \\x1b \\[/]",
    "长" * 180 + "尾",
]
"""Each value goes into every field below (cut to a field's length limit where it has one)."""

# What must never reach a terminal raw (written out here, not taken from hub.display).
INVISIBLE = (
    {c for c in range(0x20) if c not in (0x09, 0x0A)}
    | set(range(0x7F, 0xA0))
    | {0x061C, 0x200E, 0x200F, 0x2028, 0x2029}
    | set(range(0x202A, 0x202F))
    | set(range(0x2066, 0x206A))
)


def shows(out: str, value: str) -> bool:
    """Whether `out` holds `value` exactly as a terminal should show it."""
    return literal(value) in out


def head(value: str) -> str:
    """The start of a value up to its first space or line break (a table may break there).

    Stripped first: NATS headers and the directory's fields drop surrounding white space
    (U+0085 is white space to Python).
    """
    return value.strip().replace("\r", " ").split(" ")[0][:24]


@dataclass
class World:
    """The hub filled with hostile values, and what each command needs to find them."""

    home: Path
    env: dict[str, str]
    docs: list[tuple[int, str, str]] = field(default_factory=list)  # (i, doc id, value) sent
    entries: list[tuple[str, str]] = field(default_factory=list)  # (code, value) accepted
    request_ids: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    def settings(self) -> Settings:
        """For the steps done through the library rather than the CLI."""
        env = self.env
        return Settings(
            Home(self.home), nats_url=env["GOVHUB_NATS_URL"], pg_dsn=env["GOVHUB_PG_DSN"]
        )


@dataclass
class Ran:
    code: int
    out: str
    err: str


def govhub(capsys: pytest.CaptureFixture[str], world: World, *args: str) -> Ran:
    """Run `govhub ARGS` in-process as a person would, through the real entry point."""
    capsys.readouterr()
    code = 0
    try:
        main(["--home", str(world.home), *args])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return Ran(code, out, err)


def clean(ran: Ran) -> None:
    """Exit 0, no traceback, no internal error, nothing invisible reaches the terminal."""
    assert ran.code == 0, ran.err
    assert "internal error" not in ran.err and "Traceback" not in ran.err + ran.out
    leaked = {hex(ord(c)) for c in ran.out if ord(c) in INVISIBLE}
    assert not leaked, f"raw control or bidi characters reached the terminal: {leaked}"


def clean_or_refused(ran: Ran) -> None:
    """`clean`, or refused with one sentence on stderr (exit 1) and nothing on stdout."""
    if ran.code == 0:
        clean(ran)
        return
    assert ran.code == 1 and ran.err.startswith("govhub: ") and not ran.out, ran
    assert "internal error" not in ran.err and "Traceback" not in ran.err


def _call(world: World, *args: str, refusable: bool = False) -> Any:
    """Setup through the CLI with --json; fails the test run if a step fails.

    `refusable`: a field's own rules may refuse the value (the directory takes no control
    characters); then None, if it was refused in one sentence.
    """
    import contextlib
    import io

    buf, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(err):
        try:
            main(["--home", str(world.home), *args, "--json"])
        except SystemExit as exc:
            if refusable and exc.code == 1 and err.getvalue().startswith("govhub: "):
                return None
            raise AssertionError(
                f"setup step {args[:2]} failed with {exc.code}: {err.getvalue()}"
            ) from None
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str) -> Iterator[World]:
    root = tmp_path_factory.mktemp("hostile")
    nats = NatsServer(root / "nats")
    nats.start()
    name = f"govhub_t_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg_admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    dsn = pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    env = {"GOVHUB_NATS_URL": nats.url, "GOVHUB_PG_DSN": dsn}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    width = console.width
    console.width = 100_000  # no wrapping: each value must appear whole on one line
    try:
        w = World(home=root / "home", env=env)
        _fill(w, root)
        yield w
    finally:
        console.width = width
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        nats.stop()
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _fill(w: World, root: Path) -> None:
    files = root / "files"
    files.mkdir()
    for i, value in enumerate(HOSTILE):
        _call(w, "participant", "add", f"akto.hostile{i}", "--name", value)
    schema = json.loads(json.dumps(POPULATION_SCHEMA))
    schema["doc"] = HOSTILE[0]
    schema["label_zh"] = HOSTILE[1]
    for f, value in zip(schema["fields"], HOSTILE[2:], strict=False):
        f["doc"] = value
        f["label_zh"] = value[:100]
    path = files / "akto.stats.v1.ResidentPopulation.avsc"
    path.write_text(json.dumps(schema, ensure_ascii=False), encoding="utf-8")
    _call(w, "schema", "register", str(path), "--as", "akto.stats")

    for value in HOSTILE:
        sent = _call(
            w,
            "publish",
            "--as",
            "akto.civil",
            "--schema",
            "gov.common.v1.Notice",
            "--data",
            json.dumps({"title": value, "body": value, "category": value}),
        )
        w.event_ids.append(sent["event_id"])
    asyncio.run(_dead_letters(w))

    for i, value in enumerate(HOSTILE):
        name = _file_name(value, i)
        (files / name).write_bytes(f"document {i}".encode())
        sent = _call(
            w,
            "doc",
            "send",
            "--as",
            "pref.office",
            "--to",
            "akto.office,akqi.office",
            "--file",
            str(files / name),
            "--title",
            value,
            "--doc-number",
            "" if i == 0 else value[:100],
            refusable=True,
        )
        if sent is not None:
            w.docs.append((i, sent["doc_id"], value))
    # Only C0 controls (ESC, backspace) may be refused, as every receiver would refuse them.
    assert {v for _, _, v in w.docs} >= set(HOSTILE) - {HOSTILE[3], HOSTILE[7]}
    first, second = w.docs[0][1], w.docs[1][1]
    read = root / "read"
    read.mkdir()
    _call(w, "doc", "fetch", first, "--as", "akto.office", "--out", str(read))
    _call(w, "doc", "receipt", first, "--as", "akto.office", "--reject", HOSTILE[3])
    _call(w, "doc", "recall", second, "--as", "pref.office", "--reason", HOSTILE[4])
    w.out_dir = root / "fetched"
    w.out_dir.mkdir()

    for i, value in enumerate(HOSTILE):
        entry = entry_file(
            code=f"101001-{i + 100:06d}",
            title=value[:200],
            abstract=value,
            keywords=["人口", value[:50]],
            sharing=sharing("conditional"),
            data_items=[
                {"name": "township", "label_zh": value[:100], "type": "string"},
                {"name": "residents", "label_zh": "常住人口", "type": "long"},
            ],
        )
        path = files / f"entry{i}.json"
        path.write_text(json.dumps(entry, ensure_ascii=False), encoding="utf-8")
        published = _call(
            w, "dir", "publish", "--as", "akto.stats", "--file", str(path), refusable=True
        )
        if published is None:
            continue
        w.entries.append((published["code"], value))
        asked = _call(
            w, "dir", "request", published["code"], "--as", "artux.civil", "--purpose", value
        )
        w.request_ids.append(asked["request_id"])
    # Only C0 controls (ESC, backspace) may be refused by the directory's own rules.
    refused = set(HOSTILE) - {value for _, value in w.entries}
    assert refused <= {HOSTILE[3], HOSTILE[7]}, refused
    _call(w, "dir", "deny", w.request_ids[0], "--as", "akto.stats", "--reason", HOSTILE[5])
    asyncio.run(_audited(w))


def _file_name(value: str, i: int) -> str:
    """A file name made of the value (what a file system allows of it)."""
    allowed = "".join(c for c in value[:60] if c != "/" and (c >= " " and c != "\x7f"))
    return f"{allowed or 'x'}-{i}.txt"


async def _dead_letters(w: World) -> None:
    """An external system's broken messages, with hostile values in every header it sets."""
    async with open_hub(w.settings()) as hub:
        for value in HOSTILE:
            one_line = value.replace("\r", " ")
            headers = {
                "ce-specversion": "1.0",
                "ce-id": one_line,
                "ce-source": one_line,
                "ce-type": one_line,
                "ce-time": one_line,
                "content-type": "application/avro",
                "govhub-key": one_line,
                "govhub-sig": one_line,
            }
            await hub.nc.publish("evt.akto.civil.notice", value.encode(), headers=headers)
        await hub.nc.flush()


async def _audited(w: World) -> None:
    """Everything above appended to the audit log and checkpointed."""
    async with open_hub(w.settings()) as hub:
        await AuditLog(hub.settings, hub.scenario, hub.pool, hub.pg_dsn, hub.bus).catch_up()


# --- the commands ------------------------------------------------------------------------


def test_participant_list_and_show_print_names_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = govhub(capsys, world, "participant", "list")
    clean(listed)
    for i, value in enumerate(HOSTILE):
        assert shows(listed.out, value), i
        shown = govhub(capsys, world, "participant", "show", f"akto.hostile{i}")
        clean(shown)
        assert shows(shown.out, value)


def test_schema_show_and_list_print_docs_and_labels_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = govhub(capsys, world, "schema", "show", "akto.stats.v1.ResidentPopulation")
    clean(shown)
    assert shows(shown.out, HOSTILE[0]) and shows(shown.out, HOSTILE[1])
    for value in HOSTILE[2:6]:
        assert shows(shown.out, value)
    clean(govhub(capsys, world, "schema", "list"))


def test_tail_prints_payloads_and_the_quarantine_prints_dead_letters_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    tailed = govhub(capsys, world, "tail", "--subject", "evt.akto.civil.>", "--limit", "100")
    clean(tailed)
    for value in HOSTILE:
        assert shows(tailed.out, f"title={head(value)}")
    quarantine = govhub(capsys, world, "tail", "--quarantine", "--limit", "100")
    clean(quarantine)
    for value in HOSTILE:
        assert shows(quarantine.out, head(value))
    for value in HOSTILE:
        filtered = govhub(capsys, world, "tail", "--subject", value, "--limit", "1")
        clean_or_refused(filtered)


def test_doc_inbox_status_and_ledger_print_titles_numbers_and_reasons_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    inbox = govhub(capsys, world, "doc", "inbox", "--as", "akqi.office")
    clean(inbox)
    for _, doc_id, value in world.docs:
        assert doc_id in inbox.out, "whole document ids, as commands take them"
        assert shows(inbox.out, value)
    for _, doc_id, value in world.docs:
        status = govhub(capsys, world, "doc", "status", doc_id)
        clean(status)
        assert shows(status.out, value)
    rejected = govhub(capsys, world, "doc", "status", world.docs[0][1])
    assert shows(rejected.out, HOSTILE[3]), "the rejection reason is shown"
    recalled = govhub(capsys, world, "doc", "status", world.docs[1][1])
    assert shows(recalled.out, HOSTILE[4]), "the recall reason is shown"
    for who in ("pref.office", "akto.office"):
        ledger = govhub(capsys, world, "doc", "ledger", "--as", who)
        clean(ledger)
        for _, _, value in world.docs[2:]:
            assert shows(ledger.out, value)


def test_doc_fetch_and_inbox_deliver_name_the_stored_files_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    assert world.out_dir is not None
    for i, doc_id, _ in world.docs:
        if doc_id == world.docs[1][1]:
            continue  # recalled
        out = str(world.out_dir)
        before = set(world.out_dir.iterdir())
        fetched = govhub(capsys, world, "doc", "fetch", doc_id, "--as", "akqi.office", "--out", out)
        clean(fetched)
        (stored,) = set(world.out_dir.iterdir()) - before
        assert stored.read_bytes() == f"document {i}".encode()
        assert shows(fetched.out, f"stored {stored} ("), "the name it was really stored under"
    delivered = govhub(capsys, world, "doc", "inbox", "--as", "akto.office", "--deliver")
    clean(delivered)
    for _, _, value in world.docs:
        assert shows(delivered.out, value)


def test_dir_search_show_and_requests_print_titles_labels_and_purposes_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    found = govhub(capsys, world, "dir", "search", "人口", "--limit", "50")
    clean(found)
    for _, value in world.entries:
        assert shows(found.out, value[:200].strip())
    for code, value in world.entries:
        shown = govhub(capsys, world, "dir", "show", code)
        clean(shown)
        assert shows(shown.out, value[:200].strip()) and shows(shown.out, value[:100].strip())
    for query in HOSTILE:
        searched = govhub(capsys, world, "dir", "search", query)
        clean_or_refused(searched)
        if searched.code == 0:
            assert shows(searched.out, repr(query)) or shows(searched.out, query)
    requests = govhub(capsys, world, "dir", "requests", "--as", "akto.stats")
    clean(requests)
    for request_id in world.request_ids:
        assert request_id in requests.out, "whole request ids, as grant and deny take them"


def test_audit_search_proof_and_verify_print_hostile_senders_and_types_literally(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    searched = govhub(capsys, world, "audit", "search", "--limit", "500")
    clean(searched)
    for event_id in world.event_ids:
        assert event_id in searched.out
    for value in HOSTILE:
        assert shows(searched.out, head(value)), "dead letters' claimed senders"
    clean(govhub(capsys, world, "audit", "proof", world.event_ids[-1]))
    clean(govhub(capsys, world, "audit", "verify", "--full"))
    clean(govhub(capsys, world, "audit", "checkpoint"))


def never_internal(ran: Ran, args: tuple[str, ...]) -> None:
    """Taken (exit 0) or refused with one sentence (1, or 2 for click's usage errors)."""
    assert ran.code in (0, 1, 2), (args, ran.code, ran.err)
    assert "internal error" not in ran.err and "Traceback" not in ran.err, (args, ran.err)
    leaked = {hex(ord(c)) for c in ran.err + ran.out if ord(c) in INVISIBLE}
    assert not leaked, (args, leaked)


def test_hostile_arguments_to_reading_commands_never_give_an_internal_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    for value in [*HOSTILE, "", " ", "\t"]:
        for args in (
            ("participant", "show", value),
            ("schema", "show", value),
            ("doc", "status", value),
            ("doc", "inbox", "--as", value),
            ("doc", "ledger", "--as", value),
            ("dir", "show", value),
            ("dir", "requests", "--as", value),
            ("dir", "search", value, "--provider", value),
            ("audit", "search", "--participant", value, "--type", value, "--since", value),
            ("audit", "proof", value),
            ("tail", "--as", "akto.civil", "--subject", value, "--limit", "1"),
        ):
            never_internal(govhub(capsys, world, *args), args)


def test_hostile_input_to_commands_that_take_data_is_refused_or_taken_never_internal(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"content")
    record = json.dumps({"title": "t", "body": "b"})
    for value in [*HOSTILE, "", " "]:
        for args in (
            ("publish", "--as", value, "--schema", "gov.common.v1.Notice", "--data", record),
            ("publish", "--as", "akto.civil", "--schema", value, "--data", record),
            ("publish", "--as", "akto.civil", "--schema", "gov.common.v1.Notice", "--data", value),
            ("publish", "--as", "akto.civil", "--schema", "gov.common.v1.Notice", "--data",
             record, "--subject", value),
            ("doc", "send", "--as", "pref.office", "--to", value, "--file", str(small),
             "--title", "t"),
            ("doc", "send", "--as", "pref.office", "--to", "akto.office", "--file", str(small),
             "--title", "t", "--deadline", value),
            ("doc", "receipt", value, "--as", "akto.office", "--accept"),
            ("doc", "recall", value, "--as", "pref.office", "--reason", value),
            ("doc", "fetch", value, "--as", "akto.office", "--out", str(tmp_path)),
            ("dir", "request", value, "--as", "artux.civil", "--purpose", value),
            ("dir", "request", world.entries[2][0], "--as", "artux.civil", "--purpose", "p",
             "--until", value, "--fields", value),
            ("dir", "grant", value, "--as", "akto.stats", "--until", value),
            ("dir", "deny", value, "--as", "akto.stats", "--reason", value),
            ("dir", "share", world.entries[2][0], "--as", "akto.stats", "--data", value),
            ("dir", "agent-token", "--as", value),
            ("participant", "add", value, "--name", value),
            ("audit", "export", "--participant", value, "--since", value,
             "--out", str(tmp_path / "bundle.json")),
        ):  # fmt: skip
            never_internal(govhub(capsys, world, *args), args)


def test_hostile_files_given_to_commands_are_refused_in_one_sentence(
    world: World, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    latin1 = tmp_path / "latin1.json"
    latin1.write_bytes('{"title": "通知", "body": "é"}'.encode("gb18030"))
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    huge = tmp_path / "huge.json"
    huge.write_text(json.dumps({"title": "t", "body": "长" * 4_000_000}), encoding="utf-8")
    toml = tmp_path / "adapters.toml"
    toml.write_bytes(b'[[adapters]]\nname = "\xff\xfe"\n')
    schema = tmp_path / "akto.stats.v1.Bad.avsc"
    schema.write_bytes(b'{"type": "record", "name": "Bad", "doc": "\xc3\x28", "fields": []}')
    notice = ("publish", "--as", "akto.civil", "--schema", "gov.common.v1.Notice", "--data")
    for args in (
        (*notice, f"@{latin1}"),
        (*notice, f"@{deep}"),
        (*notice, f"@{huge}"),
        ("dir", "publish", "--as", "akto.stats", "--file", str(latin1)),
        ("dir", "publish", "--as", "akto.stats", "--file", str(deep)),
        ("schema", "register", str(schema), "--as", "akto.stats"),
        ("schema", "check", "--offline", str(schema)),
        ("adapter", "check", str(toml)),
    ):
        ran = govhub(capsys, world, *args)
        never_internal(ran, args)
        assert ran.code != 0 and ran.err.startswith("govhub: "), (args, ran.err)
