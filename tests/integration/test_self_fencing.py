"""A leader that cannot prove renewal stops firing before its lease could expire elsewhere."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from tests.support.timeline_jobs import beat, events
from tickonce._config.settings import Settings
from tickonce._jobs.registry import Registry
from tickonce._leadership.contender import Contender

TTL = 1.5


async def wait_for(condition: Callable[[], bool], within: float, what: str) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polls state owned by the code under test
            await asyncio.sleep(0.02)
    assert condition(), what


async def test_leader_fences_itself_when_redis_stops_answering_then_recovers(
    private_redis: RedisServer,
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log = tmp_path / "bodies.jsonl"
    monkeypatch.setenv("BODY_LOG", str(log))
    settings = make_settings(private_redis, lease_ttl_seconds=TTL, jobs_modules=[])
    jobs = Registry()
    jobs.job("interval", seconds=1, id="beat")(beat)

    def fired() -> list[float]:
        """Monotonic times (the loop's clock) at which the job body started, in its worker."""
        return [float(e["at"]) for e in events(log, "beat", "start")]

    contender = Contender(settings, jobs, mode="scheduler")
    (shard,) = contender.shards  # one shard: the whole deployment's leadership
    running = asyncio.create_task(contender.run())
    try:
        await wait_for(lambda: len(fired()) >= 2, 10, "the leader to fire twice")
        first_epoch = contender.epoch
        assert first_epoch is not None

        private_redis.pause()  # Redis stops answering; its clock keeps running
        await wait_for(lambda: shard.fenced_at is not None, 3 * TTL, "self-fencing")
        assert shard.last_renewal_sent is not None and shard.fenced_at is not None
        lease_could_expire_at = shard.last_renewal_sent + TTL
        assert shard.fenced_at < lease_could_expire_at, (
            "the leader must stop firing before its lease can expire in Redis"
        )
        assert not contender.is_leader
        fired_before = len(fired())
        await asyncio.sleep(TTL)
        assert len(fired()) == fired_before, "a fenced leader must not fire"
        assert all(at < shard.fenced_at for at in fired())

        private_redis.resume()
        await wait_for(lambda: contender.is_leader, 5 * TTL, "leadership after Redis returns")
        assert contender.epoch is not None and contender.epoch > first_epoch, (
            "a new term must have a new fencing epoch"
        )
        await wait_for(lambda: len(fired()) > fired_before, 5, "firing again after recovery")
    finally:
        private_redis.resume()
        await contender.stop()
        await running
