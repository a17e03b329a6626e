"""Real servers for tests: a nats-server from the pinned wheel per test, PostgreSQL per session.

PostgreSQL is the machine's server at 127.0.0.1:5432 (database `test`) when it answers, or an
embedded one from the pgserver wheel; GOVHUB_TEST_PG=embedded forces the embedded one so
both paths stay tested. Every test gets a fresh database of its own.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from hub.embedded import EmbeddedPostgres, ServerInfo
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.servers import NatsServer

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"

# Property tests (tests/test_hostile_*.py). `ci`, the default, draws the same examples on every
# run and keeps no example database, so a red build is reproducible and a green one stays
# green; `long` searches eighty times deeper and remembers failures, for a local hunt:
#   GOVHUB_HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/test_hostile_*.py -n 0
_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile(
    "ci", max_examples=60, derandomize=True, database=None, deadline=None,
    suppress_health_check=_QUIET, print_blob=True,
)  # fmt: skip
settings.register_profile("long", max_examples=5000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("GOVHUB_HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """Give each test session its own temporary root.

    Embedded PostgreSQL runs as `nobody` under root and must traverse the folders above its
    data directory; pytest re-secures its shared `/tmp/pytest-of-<user>` root to 0700 at every
    session start, which would cut off the servers of another session running at that moment.
    """
    if config.option.basetemp is None:
        config.option.basetemp = str(Path(tempfile.gettempdir()) / f"govhub-tests-{os.getpid()}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this session's temporary root (servers are stopped by then)."""
    if Path(str(config.option.basetemp)).name.startswith("govhub-tests-"):
        shutil.rmtree(str(config.option.basetemp), ignore_errors=True)


def _local_pg_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), 0.5):
            pass
    except OSError:
        return False

    async def probe() -> bool:
        try:
            conn = await asyncpg.connect(LOCAL_PG, timeout=3)
        except Exception:
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


@pytest.fixture(scope="session")
def pg_admin_dsn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A PostgreSQL server DSN on which tests may create databases."""
    if os.environ.get("GOVHUB_TEST_PG") != "embedded" and _local_pg_answers():
        yield LOCAL_PG
        return
    home = Home(tmp_path_factory.mktemp("pg-home"))
    server = EmbeddedPostgres(home)
    info: ServerInfo = server.start(None)
    try:
        yield info.url
    finally:
        server.stop(info)


@pytest.fixture
async def pg_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database for one test, dropped afterwards."""
    name = f"govhub_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield pg_admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    admin = await asyncpg.connect(pg_admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A real nats-server with JetStream (domain pref, sync_interval always) on free ports."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_settings(tmp_path: Path, nats_server: NatsServer, pg_dsn: str) -> Settings:
    """Settings pointing at this test's servers, with a fresh home for keys."""
    return Settings(home=Home(tmp_path / "home"), nats_url=nats_server.url, pg_dsn=pg_dsn)


@pytest.fixture
async def hub(hub_settings: Settings) -> AsyncIterator[Hub]:
    """A connected hub with the Kezhou scenario enrolled."""
    async with open_hub(hub_settings) as connected:
        yield connected
