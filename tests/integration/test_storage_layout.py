"""The data's layout is the deployment's. A scheduler or api configured for another shard count
than the data in Redis was laid out for refuses, naming the setting, instead of looking for
jobs, leases and claims under other keys (and firing a job another shard's leader fires too).
Data in a storage format this version does not read is refused the same way, never misread."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings
from tickonce._storage.keys import Keys
from tickonce._storage.layout import STORAGE_FORMAT


def test_a_scheduler_with_another_shard_count_exits_naming_the_setting(
    redis_server: RedisServer, processes: Processes, prefix: str
) -> None:
    first = processes.scheduler("one-shard", REDIS_URL=redis_server.url)
    with redis_server.client() as client:
        wait_until(lambda: client.get(f"{prefix}shards") == "1", 20, "the layout recorded")
    result = subprocess.run(
        [sys.executable, "-m", "services.scheduler"],
        env={**processes.env, "REDIS_URL": redis_server.url, "SCHEDULER_SHARDS": "2"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("tickonce: invalid setting SCHEDULER_SHARDS=2"), last
    assert "laid out for 1 shard(s)" in last, last
    assert first.poll() is None, "the scheduler configured as the data is goes on"


def test_an_api_with_another_shard_count_is_not_ready(
    redis_server: RedisServer, make_settings: Callable[..., Settings], prefix: str
) -> None:
    with redis_server.client() as client:
        client.set(f"{prefix}shards", 3)
    settings = make_settings(redis_server, scheduler_shards=2)
    with TestClient(create_app(settings)) as http:
        answer = http.get("/readyz")
    assert answer.status_code == 503
    assert "SCHEDULER_SHARDS=2" in answer.json()["detail"]
    assert "laid out for 3 shard(s)" in answer.json()["detail"]


def test_a_scheduler_records_the_storage_format_and_refuses_one_it_does_not_read(
    redis_server: RedisServer, processes: Processes, prefix: str
) -> None:
    keys = Keys(prefix)
    first = processes.scheduler("first", REDIS_URL=redis_server.url)
    with redis_server.client() as client:
        wait_until(
            lambda: client.get(keys.storage_format) == str(STORAGE_FORMAT), 20, "format recorded"
        )
        assert processes.terminate("first") == 0
        client.set(keys.storage_format, STORAGE_FORMAT + 1)  # as a newer version would
    result = subprocess.run(
        [sys.executable, "-m", "services.scheduler"],
        env={**processes.env, "REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert f"is in storage format {STORAGE_FORMAT + 1}" in last, last
    assert keys.storage_format in last, last
    assert first.returncode == 0


def test_an_api_over_data_in_a_format_it_does_not_read_is_not_ready(
    redis_server: RedisServer, make_settings: Callable[..., Settings], prefix: str
) -> None:
    with redis_server.client() as client:
        client.set(Keys(prefix).storage_format, STORAGE_FORMAT + 1)
    with TestClient(create_app(make_settings(redis_server))) as http:
        answer = http.get("/readyz")
    assert answer.status_code == 503
    assert f"storage format {STORAGE_FORMAT + 1}" in answer.json()["detail"]
