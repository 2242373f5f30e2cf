"""The data's layout is the deployment's. A scheduler or api configured for another shard count
than the data in Redis was laid out for refuses, naming the setting, instead of looking for
jobs, leases and claims under other keys (and firing a job another shard's leader fires too).
Data in a storage format this version does not read is refused the same way, never misread."""

from __future__ import annotations

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
    last = processes.refused_start(REDIS_URL=redis_server.url, SCHEDULER_SHARDS="2")
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
    last = processes.refused_start(REDIS_URL=redis_server.url)
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


def test_an_api_with_another_shard_count_is_unhealthy_and_changes_nothing(
    redis_server: RedisServer,
    processes: Processes,
    make_settings: Callable[..., Settings],
    prefix: str,
) -> None:
    """Load balancers and orchestrators check /healthz: a replica configured for 3 shards over
    data laid out for 2 must fail it, and must not create a job in a shard its schedulers do
    not read it from (job-7 is in shard 0 of 2 but shard 1 of 3, which a leader of 2 serves)."""
    processes.scheduler("two-shards", REDIS_URL=redis_server.url, SCHEDULER_SHARDS="2")
    keys = Keys(prefix, 2, 0, True)
    with redis_server.client() as client:
        wait_until(lambda: client.get(keys.layout) == "2", 20, "the layout recorded")
        wait_until(
            lambda: all(client.get(keys.in_shard(s).lease) for s in (0, 1)), 20, "two leaders"
        )
    settings = make_settings(redis_server, scheduler_shards=3, api_token="t" * 20)
    with TestClient(create_app(settings)) as http:
        health = http.get("/healthz")
        created = http.post(
            "/jobs",
            json={"id": "job-7", "task": "probe", "trigger": {"type": "interval", "hours": 1}},
            headers={"Authorization": f"Bearer {'t' * 20}"},
        )
        listed = http.get("/jobs", headers={"Authorization": f"Bearer {'t' * 20}"})
    assert health.status_code == 503, health.text
    assert "SCHEDULER_SHARDS=3" in health.json()["detail"]
    assert created.status_code == 503, created.text
    assert "SCHEDULER_SHARDS=3" in created.json()["detail"]
    assert listed.status_code == 503, listed.text
    with redis_server.client() as client:
        stored = [k for s in (0, 1) if client.hexists(keys.in_shard(s).jobs, "job-7") for k in [s]]
    assert not stored, f"job-7 was created in shard(s) {stored} of the 2-shard deployment"


def test_data_written_before_shards_is_not_read_with_several_shards(
    redis_server: RedisServer, processes: Processes, prefix: str
) -> None:
    """A deployment from before the shard layout was recorded keeps its data under untagged
    keys; a scheduler started on it with SCHEDULER_SHARDS=2 would never read it again (paused
    jobs run, API-created jobs vanish, a fired date job runs again): it must refuse."""
    old = Keys(prefix)
    with redis_server.client() as client:
        client.set(old.epoch, 7)
        client.hset(old.jobs, "api-made", "state")  # what 0.1 left: no layout record
        client.zadd(old.decided, {"once": 1_700_000_000_000})
    last = processes.refused_start(REDIS_URL=redis_server.url, SCHEDULER_SHARDS="2")
    assert "SCHEDULER_SHARDS=2" in last and old.jobs in last, last
    with redis_server.client() as client:
        assert client.get(old.layout) is None, "a refused start recorded a layout"
