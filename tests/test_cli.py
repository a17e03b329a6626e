"""The `govhub` command as a user or script meets it (in-process, against real servers)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result

from hub.cli import cli
from hub.home import Settings
from hub.scenario import load_scenario


@pytest.fixture
def run(hub_settings: Settings, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(
            cli, ["--home", str(hub_settings.home.root), *args], catch_exceptions=False
        )

    return invoke


def _json(result: Result) -> dict:  # type: ignore[type-arg]
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_scenario_participant_can_publish_a_notice(run) -> None:  # type: ignore[no-untyped-def]
    for p in load_scenario().participants:
        out = _json(
            run(
                "publish",
                "--as",
                p.id,
                "--schema",
                "gov.common.v1.Notice",
                "--data",
                json.dumps({"title": f"{p.name}通知", "body": "正文"}),
                "--json",
            )
        )
        assert set(out) >= {"event_id", "subject", "stream", "seq"}
        assert out["subject"] == f"evt.{p.id}.notice"
        assert out["stream"] == "GOVHUB"
    events = _json(run("tail", "--subject", "evt.>", "--limit", "100", "--json"))["events"]
    assert len(events) == 56
    assert all(e["verified"] for e in events)


def test_invalid_json_data_is_one_clear_sentence_and_a_nonzero_exit(run) -> None:  # type: ignore[no-untyped-def]
    from hub.errors import InputError

    with pytest.raises(InputError, match="--data is not valid JSON"):
        run(
            "publish", "--as", "akto.civil", "--schema", "gov.common.v1.Notice", "--data", "{title:"
        )


def test_main_prints_errors_as_one_sentence_on_stderr(
    hub_settings: Settings, monkeypatch, capsys
) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", hub_settings.pg_dsn or "")
    monkeypatch.setattr(
        "sys.argv",
        [
            "govhub",
            "--home",
            str(hub_settings.home.root),
            "publish",
            "--as",
            "akto.civil",
            "--schema",
            "gov.common.v1.Notice",
            "--data",
            '{"title": 1, "body": "b"}',
        ],
    )
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("govhub: the data does not fit schema gov.common.v1.Notice")


def test_publishing_on_another_participants_subject_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    from hub.errors import RegistryError

    with pytest.raises(RegistryError, match="akto.civil may not publish on evt.artux.stats.notice"):
        run(
            "publish",
            "--as",
            "akto.civil",
            "--schema",
            "gov.common.v1.Notice",
            "--data",
            '{"title": "t", "body": "b"}',
            "--subject",
            "evt.artux.stats.notice",
        )


def test_participant_show_and_list_give_id_key_certificate_and_status(run) -> None:  # type: ignore[no-untyped-def]
    shown = _json(run("participant", "show", "akto.civil", "--json"))
    for field in ("id", "public_key", "key_id", "certificate_pem", "status"):
        assert shown[field], field
    listed = _json(run("participant", "list", "--json"))["participants"]
    assert len(listed) == 56
    assert all(
        {"id", "public_key", "key_id", "certificate_pem", "status"} <= set(p) for p in listed
    )


def test_participant_add_rotate_revoke_through_the_cli(run) -> None:  # type: ignore[no-untyped-def]
    added = _json(run("participant", "add", "akto.water", "--name", "阿克陶县水利局", "--json"))
    assert added["status"] == "active"
    rotated = _json(run("participant", "rotate", "akto.water", "--json"))
    assert rotated["key_id"] != added["key_id"] and len(rotated["keys"]) == 2
    revoked = _json(run("participant", "revoke", "akto.water", "--json"))
    assert revoked["status"] == "revoked" and revoked["revoked_at"]
    from hub.errors import RegistryError

    with pytest.raises(RegistryError, match="revoked"):
        run(
            "publish",
            "--as",
            "akto.water",
            "--schema",
            "gov.common.v1.Notice",
            "--data",
            '{"title":"t","body":"b"}',
        )


def test_status_json_reports_urls_of_external_servers(run, hub_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    status = _json(run("status", "--json"))
    assert status["mode"] == "external"
    assert status["nats_url"] == hub_settings.nats_url
    assert status["pg_dsn"]


def test_an_unreachable_postgresql_at_start_is_a_clear_error(
    hub_settings: Settings, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from hub.errors import ServerUnavailable

    monkeypatch.setenv("GOVHUB_NATS_URL", hub_settings.nats_url or "")
    monkeypatch.setenv("GOVHUB_PG_DSN", "postgresql://postgres@127.0.0.1:1/none")
    with pytest.raises(
        ServerUnavailable,
        match=r"cannot reach PostgreSQL at postgresql://postgres@127\.0\.0\.1:1/none",
    ):
        CliRunner().invoke(
            cli,
            ["--home", str(hub_settings.home.root), "participant", "list"],
            catch_exceptions=False,
        )


def test_tail_shows_quarantined_events_with_their_reason(run, hub_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from hub.envelope import Envelope
    from hub.runtime import open_hub

    async def forge() -> None:
        async with open_hub(hub_settings) as hub:
            env = hub.seal("akto.civil", "gov.common.v1.Notice", {"title": "t", "body": "b"})
            altered = hub.schemas.by_name("gov.common.v1.Notice").encode(
                {"title": "T", "body": "b"}
            )
            await hub.publisher.publish(Envelope(env.subject, env.headers, altered))

    asyncio.run(forge())
    shown = _json(run("tail", "--subject", "evt.>", "--json"))["events"]
    assert [e["reason"] for e in shown] == ["bad_signature"]
    quarantined = _json(run("tail", "--quarantine", "--json"))["events"]
    assert [e["reason"] for e in quarantined] == ["bad_signature"]
    assert quarantined[0]["subject"] == "evt.akto.civil.notice"
