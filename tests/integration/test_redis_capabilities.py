"""What tickonce needs of Redis is checked at start. A Redis that may evict any key when full
(an evicted epoch breaks fencing, an evicted decided mark re-runs fire times) is refused; one
that evicts only keys with an expiry, or keeps nothing on disk, is named in a warning; a Redis
that refuses CONFIG (a managed one) is used, with a line saying what could not be checked."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._storage.keys import Keys

pytestmark = pytest.mark.processes


def server(tmp_path: Path, *extra: str) -> RedisServer:
    return RedisServer(tmp_path / "redis", extra=extra).start()


def test_a_redis_that_may_evict_any_key_is_refused(tmp_path: Path, processes: Processes) -> None:
    redis_ = server(tmp_path, "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru")
    try:
        last = processes.refused_start(REDIS_URL=redis_.url)
    finally:
        redis_.stop()
    assert "maxmemory-policy allkeys-lru" in last and "noeviction" in last, last


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (("--maxmemory", "100mb", "--maxmemory-policy", "volatile-lru"), "volatile-lru"),
        (("--rename-command", "CONFIG", ""), "could not check"),
    ],
    ids=["evicts-keys-with-an-expiry", "config-refused"],
)
def test_a_redis_tickonce_can_work_with_is_used_and_what_is_unsure_is_said(
    tmp_path: Path, processes: Processes, prefix: str, extra: tuple[str, ...], said: str
) -> None:
    redis_ = server(tmp_path, *extra)
    try:
        processes.scheduler("scheduler", REDIS_URL=redis_.url)
        with redis.Redis.from_url(redis_.url, decode_responses=True) as client:
            wait_until(lambda: client.get(Keys(prefix).lease), 30, "the scheduler leading")
        assert processes.terminate("scheduler") == 0
    finally:
        redis_.stop()
    log = processes.log("scheduler")
    assert said in log, log[-3000:]
    if said != "could not check":
        assert "keeps nothing on disk" in log, "the test Redis persists nothing: say so"
