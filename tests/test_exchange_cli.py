"""`govhub doc ...` and `govhub bench documents` as a person or a script meets them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from hub.cli import cli
from hub.errors import DocumentClosed, NotRecipient, UnknownDocument
from hub.home import Settings


@pytest.fixture
def run(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--home", str(hub_settings.home.root), *args], catch_exceptions=False
        )

    return invoke


def _json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_document_goes_out_is_fetched_and_answered_through_the_cli(
    run: Any, tmp_path: Path
) -> None:
    source = tmp_path / "通知.pdf"
    source.write_bytes(b"%PDF-1.7 " + os.urandom(700_000))
    sent = _json(
        run(
            "doc",
            "send",
            "--as",
            "pref.office",
            "--to",
            "akto.office,akqi.office",
            "--file",
            str(source),
            "--title",
            "关于做好冬季安全生产工作的通知",
            "--doc-number",
            "克政办发〔2026〕12号",
            "--urgency",
            "urgent",
            "--classification",
            "confidential",
            "--deadline",
            "3d",
            "--json",
        )
    )
    doc_id = sent["doc_id"]
    assert sent["chunks"] == 3 and sent["chunks_sent"] == 3 and not sent["resumed"]
    inbox = _json(run("doc", "inbox", "--as", "akto.office", "--json"))
    assert [(d["doc_id"], d["state"]) for d in inbox["documents"]] == [(doc_id, "sent")]
    assert inbox["documents"][0]["doc_number"] == "克政办发〔2026〕12号"

    inbox_dir = tmp_path / "akto-inbox"
    inbox_dir.mkdir()
    fetched = _json(
        run("doc", "fetch", doc_id, "--as", "akto.office", "--out", str(inbox_dir), "--json")
    )
    assert Path(fetched["path"]) == inbox_dir / "通知.pdf"
    assert (inbox_dir / "通知.pdf").read_bytes() == source.read_bytes()
    assert fetched["verified"] and fetched["delivery_receipt"]

    with pytest.raises(DocumentClosed, match="fetch it first"):
        run("doc", "receipt", doc_id, "--as", "akqi.office", "--reject", "请补充附件")
    delivered = _json(run("doc", "inbox", "--as", "akqi.office", "--deliver", "--json"))
    assert [d["doc_id"] for d in delivered["delivered_now"]] == [doc_id]
    accepted = _json(run("doc", "receipt", doc_id, "--as", "akto.office", "--accept", "--json"))
    assert accepted["decision"] == "accepted" and not accepted["late"]
    _json(run("doc", "receipt", doc_id, "--as", "akqi.office", "--reject", "请补充附件", "--json"))

    status = _json(run("doc", "status", doc_id, "--json"))
    assert {r["recipient"]: r["state"] for r in status["recipients"]} == {
        "akto.office": "accepted",
        "akqi.office": "rejected",
    }
    assert status["encryption"]["suite"] == "x25519"
    assert status["deadline_clock"] == "sender"
    register = _json(run("doc", "ledger", "--as", "pref.office", "--json"))
    assert register["totals"]["out"] == 1
    assert register["entries"][0]["states"] == {"accepted": 1, "rejected": 1}
    with pytest.raises(DocumentClosed, match="only be recalled before it is accepted"):
        run("doc", "recall", doc_id, "--as", "pref.office")

    human = run("doc", "status", doc_id)
    assert "关于做好冬季安全生产工作的通知" in human.output and "rejected" in human.output
    assert "收发文登记" in run("doc", "ledger", "--as", "pref.office").output


def test_fetch_refuses_non_recipients_unknown_documents_and_existing_files(
    run: Any, tmp_path: Path
) -> None:
    source = tmp_path / "plan.txt"
    source.write_text("2027年工作计划")
    doc_id = _json(
        run(
            "doc",
            "send",
            "--as",
            "akto.office",
            "--to",
            "pref.office",
            "--file",
            str(source),
            "--title",
            "2027年工作计划",
            "--json",
        )
    )["doc_id"]
    with pytest.raises(NotRecipient, match="akqi.office is not a recipient"):
        run("doc", "fetch", doc_id, "--as", "akqi.office", "--out", str(tmp_path / "x.txt"))
    with pytest.raises(UnknownDocument, match="no document 01234567"):
        run("doc", "status", "01234567-89ab-7def-8123-456789abcdef")
    from hub.errors import InputError

    with pytest.raises(InputError, match="already exists"):
        run("doc", "fetch", doc_id, "--as", "pref.office", "--out", str(source))
    with pytest.raises(InputError, match="not a document id"):
        run("doc", "status", "../../etc/passwd")
    with pytest.raises(InputError, match="--deadline"):
        run(
            "doc",
            "send",
            "--as",
            "akto.office",
            "--to",
            "pref.office",
            "--file",
            str(source),
            "--title",
            "t",
            "--deadline",
            "next tuesday",
        )


def test_a_refusal_is_one_sentence_on_stderr_and_a_nonzero_exit(
    hub_settings: Settings, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "GOVHUB_NATS_URL": hub_settings.nats_url or "",
        "GOVHUB_PG_DSN": hub_settings.pg_dsn or "",
        "GOVHUB_HOME": str(hub_settings.home.root),
    }
    source = tmp_path / "x.txt"
    source.write_text("内容")
    cmd = [sys.executable, "-m", "hub"]
    result = subprocess.run(
        [
            *cmd,
            "doc",
            "send",
            "--as",
            "pref.office",
            "--to",
            "akto.nobody",
            "--file",
            str(source),
            "--title",
            "t",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("govhub: recipient akto.nobody does not exist")


def test_the_documents_benchmark_runs_with_tiny_sizes(run: Any) -> None:
    result = _json(
        run("bench", "documents", "--size", "300KiB", "--small", "4", "--recipients", "2", "--json")
    )
    assert result["large"]["bytes"] == 300 * 1024
    assert result["large"]["govhub"]["send_mb_s"] > 0
    assert result["large"]["raw_object_store"]["get_mb_s"] > 0
    assert result["small"]["govhub"]["delivered_states"] == 8
    assert set(result["targets"]) >= {"send_at_least_raw", "peak_rss_under_256_mb"}


async def test_the_demo_chapter_tells_the_truth(hub: Any) -> None:
    from hub.demo import Story
    from hub.demo.documents import CHAPTER

    facts = await CHAPTER.run(hub, Story())
    assert facts["circular"]["states"] == {
        "akqi.office": "accepted",
        "akto.office": "accepted",
        "artux.office": "accepted",
        "wuqia.office": "rejected",
    }
    assert sorted(facts["circular"]["delivered_by_agent"]) == sorted(facts["circular"]["states"])
    assert facts["confidential"]["opened_by"] == {"pref.office": True, "akto.office": True}
    assert facts["confidential"]["ciphertext_in_store"]
    assert set(facts["confidential"]["refused"]) == {"fetch", "decrypt"}
    directions = sorted(e["direction"] for e in facts["ledger"]["entries"])
    assert directions == ["in", "in", "out", "register"]


def test_doc_send_of_a_file_name_that_is_not_utf8_is_one_sentence_not_an_internal_error(
    hub_settings: Settings, tmp_path: Path
) -> None:
    # Regression: `internal error (UnicodeEncodeError)`. The name is the bytes of 公文.txt in GBK.
    source = os.fsencode(tmp_path) + b"/\xb9\xab\xce\xc4.txt"
    with open(source, "wb") as f:
        f.write(b"content")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GOVHUB_")},
        "GOVHUB_HOME": str(hub_settings.home.root),
        "GOVHUB_NATS_URL": hub_settings.nats_url or "",
        "GOVHUB_PG_DSN": hub_settings.pg_dsn or "",
    }
    args = ["doc", "send", "--as", "pref.office", "--to", "akto.office", "--title", "通知"]
    result = subprocess.run(
        [os.fsencode(sys.executable), b"-m", b"hub", *map(os.fsencode, args), b"--file", source],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    err = result.stderr.decode()
    assert result.returncode == 1, err
    assert err.startswith("govhub: the file name ") and "\\xb9\\xab\\xce\\xc4.txt" in err
    assert "internal error" not in err and "Unicode" not in err
