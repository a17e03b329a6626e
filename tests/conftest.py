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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, settings

from hub.embedded import EmbeddedPostgres, ServerInfo
from hub.home import Home, Settings
from hub.runtime import Hub, open_hub
from tests.servers import NatsServer

LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/test"

# Every `govhub serve` a test starts (in this process or as a child) puts its console on a free
# port, not on the default 8490 that parallel tests (and a person's own serve) would share.
os.environ.setdefault("GOVHUB_CONSOLE_HTTP", "127.0.0.1:0")

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
    # A grouped module shares one module-scoped world (tests/test_hostile_display.py). From
    # pytest 9.2, pytest-xdist's loadgroup loses the groups without a word (pytest-xdist#1386)
    # and every worker builds its own world: refuse rather than run slower and differently.
    if config.getoption("dist", "no") == "loadgroup" and pytest.version_tuple[:2] >= (9, 2):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} makes --dist loadgroup split xdist groups "
            "(pytest-xdist#1386); install the versions pyproject.toml names (make test does)"
        )
    if config.option.basetemp is None:
        config.option.basetemp = str(Path(tempfile.gettempdir()) / f"govhub-tests-{os.getpid()}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this session's temporary root (servers are stopped by then)."""
    if Path(str(config.option.basetemp)).name.startswith("govhub-tests-"):
        shutil.rmtree(str(config.option.basetemp), ignore_errors=True)


# Lanes: `servers` marks each test that starts a server (through these fixtures, or marked by
# its module when it starts its own); `make test-fast` runs the rest. `federation` marks the
# multi-server topologies.
_SERVER_FIXTURES = {"pg_admin_dsn", "nats_server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put each test in its lanes (markers registered in pyproject.toml)."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)
        if item.nodeid.startswith("tests/test_federation"):
            item.add_marker(pytest.mark.federation)


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
def nats_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[NatsServer]:
    """A real nats-server with JetStream (domain pref, sync_interval always) on free ports.

    For a test on an enrolled hub (`hub_settings`) it starts from the enrolled copy's store:
    the stream holds the enrollment's signed events and the buckets the registry.
    """
    server = NatsServer(tmp_path / "nats")
    if "hub_settings" in request.fixturenames:
        enrolled: Enrolled = request.getfixturevalue("enrolled")
        shutil.copytree(enrolled.nats_store, server.store_dir)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Enrolled:
    """A database and a key home with the Kezhou scenario enrolled, to copy for each test."""

    template: str
    home: Path
    nats_store: Path


@pytest.fixture(scope="session")
def enrolled(tmp_path_factory: pytest.TempPathFactory, pg_admin_dsn: str) -> Iterator[Enrolled]:
    """Enroll once per session (56 participants with keys and certificates, every shipped
    schema registered): about a second that every test using `hub` would otherwise pay."""
    root = tmp_path_factory.mktemp("enrolled")
    template = f"govhub_tpl_{secrets.token_hex(6)}"
    asyncio.run(_admin(pg_admin_dsn, f'CREATE DATABASE "{template}"'))
    nats = NatsServer(root / "nats")
    nats.start()
    try:
        settings = Settings(
            home=Home(root / "home"), nats_url=nats.url, pg_dsn=_dsn(pg_admin_dsn, template)
        )

        async def enroll() -> None:
            async with open_hub(settings):
                pass

        asyncio.run(enroll())
    finally:
        nats.stop()
    yield Enrolled(template, root / "home", nats.store_dir)
    asyncio.run(_admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)'))


@pytest.fixture
async def enrolled_dsn(pg_admin_dsn: str, enrolled: Enrolled) -> AsyncIterator[str]:
    """A database of its own for one test, copied from the enrolled template."""
    name = f"govhub_t_{secrets.token_hex(6)}"
    await _admin_async(pg_admin_dsn, f'CREATE DATABASE "{name}" TEMPLATE "{enrolled.template}"')
    yield _dsn(pg_admin_dsn, name)
    await _admin_async(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def hub_settings(
    tmp_path: Path, nats_server: NatsServer, enrolled: Enrolled, enrolled_dsn: str
) -> Settings:
    """Settings pointing at this test's servers and an enrolled copy of the scenario.

    The copy holds the registry, the keys, and (in the test's own nats-server) the stream
    and buckets as enrollment left them.
    """
    home = tmp_path / "home"
    shutil.copytree(enrolled.home, home)
    return Settings(home=Home(home), nats_url=nats_server.url, pg_dsn=enrolled_dsn)


def _dsn(admin_dsn: str, database: str) -> str:
    return admin_dsn.rsplit("/", 1)[0] + f"/{database}"


async def _admin_async(admin_dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _admin(admin_dsn: str, sql: str) -> Any:
    return _admin_async(admin_dsn, sql)


@pytest.fixture
async def hub(hub_settings: Settings) -> AsyncIterator[Hub]:
    """A connected hub with the Kezhou scenario enrolled."""
    async with open_hub(hub_settings) as connected:
        yield connected


@pytest.fixture
def full_device(tmp_path: Path) -> Path:
    """A device that refuses every write with "no space left" (/dev/full's own number, made
    in the test's folder), so a broken output writer can replace only this copy, never the
    machine's /dev/full; a symbolic link to /dev/full where device nodes cannot be made."""
    import stat

    path = tmp_path / "full"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    except PermissionError:
        path.symlink_to("/dev/full")
    return path
