"""Config checked once at the edge: types, unknown keys, secrets by reference, all with paths."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from hub.errors import ConfigError
from hub.integration.tomlconfig import Secret, load


@dataclass(frozen=True, kw_only=True)
class Inner:
    port: int = 8491
    mode: Literal["fast", "safe"] = "safe"


@dataclass(frozen=True, kw_only=True)
class Outer:
    name: str
    token: Secret | None = None
    tags: tuple[str, ...] = ()
    inner: Inner = field(default_factory=Inner)
    ratio: float = 1.0
    folder: Path | None = None


def test_a_complete_table_becomes_a_frozen_dataclass() -> None:
    value = load(
        Outer,
        {
            "name": "a",
            "tags": ["x", "y"],
            "inner": {"port": 1, "mode": "fast"},
            "ratio": 2,
            "token": {"env": "TOKEN"},
            "folder": "~/share",
        },
        "adapters[0]",
    )
    assert value == Outer(
        name="a",
        tags=("x", "y"),
        inner=Inner(port=1, mode="fast"),
        ratio=2.0,
        token=Secret(env="TOKEN"),
        folder=Path("~/share").expanduser(),
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, 'adapters[0]: missing key "name"'),
        ({"name": "a", "nmae": "b"}, 'adapters[0].nmae: unknown key "nmae" (did you mean "name"?)'),
        ({"name": 1}, "adapters[0].name: expected a string, got 1"),
        ({"name": "a", "inner": {"port": "80"}}, "adapters[0].inner.port: expected an integer"),
        ({"name": "a", "inner": {"mode": "slow"}}, "adapters[0].inner.mode: 'slow' is not one of"),
        ({"name": "a", "tags": "x"}, "adapters[0].tags: expected a list"),
        ({"name": "a", "token": "hunter2"}, "adapters[0].token: secrets are given by reference"),
        ({"name": "a", "token": {"value": "x"}}, 'adapters[0].token: expected { env = "NAME" }'),
        ({"name": "a", "ratio": True}, "adapters[0].ratio: expected a number"),
    ],
)
def test_each_mistake_names_its_key_path(data: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(Outer, data, "adapters[0]")
    assert str(raised.value).startswith(message)


def test_a_secret_is_read_when_used_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secret").write_text("s3cret\n")
    from_file = Secret(file=tmp_path / "secret")
    assert from_file.reveal() == "s3cret"
    monkeypatch.setenv("GOVHUB_TEST_TOKEN", "t0ken")
    from_env = Secret(env="GOVHUB_TEST_TOKEN")
    assert from_env.reveal() == "t0ken"
    assert "t0ken" not in repr(from_env) and "s3cret" not in repr(from_file)
    with pytest.raises(ConfigError, match="GOVHUB_TEST_MISSING is not set"):
        Secret(env="GOVHUB_TEST_MISSING").reveal()
    with pytest.raises(ConfigError, match="cannot read the secret file"):
        Secret(file=tmp_path / "absent").reveal()
