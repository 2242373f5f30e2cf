"""Shared fixtures: a real Redis, a fresh key prefix per test, settings that use them.

The session's Redis is a container (testcontainers) when Docker is available, else a local
redis-server process. Tests that pause, crash or restart Redis get a private redis-server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.core.settings import Settings, get_settings
from tests.support.containers import ContainerRedis, docker_problem
from tests.support.processes import Processes
from tests.support.redis_server import RedisServer


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
