"""Shared fixtures: a real Redis, a fresh key prefix per test, settings that use them.

The session's Redis is a container (testcontainers) when Docker is available, else a local
redis-server process. Tests that pause, crash or restart Redis get a private redis-server.

Markers (pyproject.toml lists what each selects) are applied here, at collection, by directory
and by fixture: pytest ignores ``pytestmark`` in a conftest.py, so a directory cannot mark its
own tests, and a test that uses the ``processes`` fixture is marked whatever its file says.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests.support.containers import ContainerRedis, docker_problem
from tests.support.processes import Processes
from tests.support.redis_server import RedisServer
from tickonce._config.settings import Settings, get_settings

TESTS = Path(__file__).resolve().parent

# Every test under a directory carries its markers.
DIRECTORY_MARKERS: dict[str, tuple[str, ...]] = {
    "chaos": ("chaos", "processes"),
    "e2e": ("containers",),
}
# Every test that uses a fixture carries its marker: `processes` starts scheduler and gunicorn
# processes, `stack` is the compose stack.
FIXTURE_MARKERS: dict[str, str] = {"processes": "processes", "stack": "containers"}


def markers_for(item: pytest.Item) -> set[str]:
    """The markers a test must carry because of where it lives and what fixtures it uses."""
    wanted: set[str] = set()
    for directory, names in DIRECTORY_MARKERS.items():
        if item.path.is_relative_to(TESTS / directory):
            wanted.update(names)
    fixtures: list[str] = getattr(item, "fixturenames", [])
    wanted.update(marker for fixture, marker in FIXTURE_MARKERS.items() if fixture in fixtures)
    return wanted


def refuse_pytestmark_in_conftest(config: pytest.Config) -> None:
    """A ``pytestmark`` in a conftest.py marks nothing; fail instead of silently selecting."""
    for plugin in config.pluginmanager.get_plugins():
        if (
            isinstance(plugin, ModuleType)
            and Path(plugin.__file__ or "").name == "conftest.py"
            and hasattr(plugin, "pytestmark")
        ):
            raise pytest.UsageError(
                f"{plugin.__file__}: pytest ignores pytestmark in a conftest.py; "
                "mark the directory in DIRECTORY_MARKERS of tests/conftest.py instead"
            )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    refuse_pytestmark_in_conftest(config)
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for name in sorted(markers_for(item) - present):
            item.add_marker(name)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server: RedisServer | ContainerRedis
    if docker_problem() is None:
        server = ContainerRedis().start()
    else:
        server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    try:
        yield server  # type: ignore[misc]
    finally:
        server.stop()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of this test's own, to pause, stop or restart (with AOF persistence)."""
    server = RedisServer(tmp_path / "redis", persist=True).start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    """Every test works under its own key prefix, so tests never see each other's keys."""
    return f"test-{uuid.uuid4().hex[:8]}:"


@pytest.fixture
def make_settings(prefix: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Settings for in-process services; jobs (which read the environment) see the same."""

    def make(server: RedisServer, **overrides: object) -> Settings:
        monkeypatch.setenv("REDIS_URL", server.url)
        monkeypatch.setenv("KEY_PREFIX", prefix)
        get_settings.cache_clear()
        values: dict[str, object] = {
            "redis_url": server.url,
            "key_prefix": prefix,
            "lease_ttl_seconds": 2.0,
            "jobs_modules": ["tests.support.probe_jobs"],
            "shutdown_grace_seconds": 5.0,
            **overrides,
        }
        return Settings(**values)  # type: ignore[arg-type]

    yield make
    get_settings.cache_clear()


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    connection = redis_server.client()
    yield connection
    connection.close()


@pytest.fixture
def raw_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """Bytes replies, as the job store's client has them (its values are pickles)."""
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


@pytest.fixture
def processes(tmp_path: Path, prefix: str) -> Iterator[Processes]:
    procs = Processes(
        tmp_path,
        {
            "KEY_PREFIX": prefix,
            "JOBS_MODULES": "tests.support.probe_jobs",
            "LEASE_TTL_SECONDS": "2",
            "SHUTDOWN_GRACE_SECONDS": "5",
        },
    )
    yield procs
    procs.close()
