"""Redis trouble on a Redis Cluster: every node of the cluster goes away while a job body runs,
and comes back. A cluster client then raises RedisClusterException ("Redis Cluster cannot be
connected"), which is not a RedisError; the scheduler must take it as the Redis trouble it is:
stay up, fence itself, record the run once the cluster answers again, and lead and fire again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis

from tests.support.ledger_checks import duplicates, fire_times, read_evidence
from tests.support.processes import Processes, wait_until
from tests.support.redis_cluster import RedisClusterGroup
from tests.support.redis_server import free_port
from tickonce._config.settings import Settings
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.clients import REDIS_TROUBLE, async_redis, sync_redis
from tickonce._storage.keys import Keys

pytestmark = [pytest.mark.processes, pytest.mark.timeout(120)]

JOB = "long"  # tests.support.overlap_jobs: every second, one at a time, a 3-second body
OUTAGE_SECONDS = 6.0  # longer than the body's rest, the lease ttl (2 s) and many passes


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisClusterGroup]:
    group = RedisClusterGroup(tmp_path / "cluster")
    for node in group.nodes:
        node.persist = True  # AOF, fsync always: the data outlives the nodes' restart
    group.start()
    yield group
    group.stop()


def ledger(cluster: RedisClusterGroup, keys: Keys) -> list[RunRecord]:
    with cluster.client() as client:  # a new client: the nodes may have restarted
        return read_evidence(cast(redis.Redis, client), keys.prefix, JOB, keys=keys).ledger


def body_events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    lines = [json.loads(line) for line in log.read_text().splitlines() if line]
    return [line for line in lines if line["job"] == JOB]


def running_body(log: Path) -> dict[str, Any] | None:
    """The start of a body that has not ended yet, once an earlier body has ended."""
    events = body_events(log)
    ended = {event["scheduled_at"] for event in events if event["event"] == "end"}
    if not ended:
        return None
    going = [e for e in events if e["event"] == "start" and e["scheduled_at"] not in ended]
    return going[-1] if going else None


def cluster_ok(cluster: RedisClusterGroup) -> bool:
    for node in cluster.nodes:
        try:
            with node.client() as client:
                if "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
        except redis.RedisError:
            return False
    return True


def cluster_exception_tracebacks(log: str) -> list[str]:
    """Every traceback in ``log`` whose exception is a RedisClusterException."""
    found = []
    for match in re.finditer(r"^Traceback \(most recent call last\):\n", log, re.MULTILINE):
        lines = log[match.start() :].splitlines()
        # The exception line: the first one after the frames that is not indented.
        end = next(
            (n for n, line in enumerate(lines[1:], 1) if line and not line[0].isspace()),
            len(lines) - 1,
        )
        if "RedisClusterException" in lines[end]:
            found.append("\n".join(lines[: end + 1]))
    return found


def test_a_scheduler_rides_out_a_whole_cluster_outage_during_a_body(
    cluster: RedisClusterGroup, processes: Processes, prefix: str, tmp_path: Path
) -> None:
    keys = Keys(prefix, 1, 0, tagged=True)
    log = tmp_path / "bodies.jsonl"
    scheduler = processes.scheduler(
        "scheduler",
        REDIS_URL=cluster.url,
        REDIS_CLUSTER="true",
        JOBS_MODULES="tests.support.overlap_jobs",
        OVERLAP_LOG=str(log),
    )

    def alive() -> None:
        assert scheduler.poll() is None, (
            f"the scheduler exited ({scheduler.returncode}):\n{processes.log('scheduler')[-4000:]}"
        )

    def settled() -> bool:
        alive()
        return any(e.status == "succeeded" for e in ledger(cluster, keys))

    wait_until(settled, 20, f"a run of {JOB} in the ledger")

    def body_running() -> dict[str, Any] | None:
        alive()
        return running_body(log)

    body = wait_until(body_running, 10, f"a body of {JOB} running")
    assert body is not None
    interrupted = fire_ms(datetime.fromisoformat(body["scheduled_at"]))

    for node in cluster.nodes:  # SIGKILL: its port refuses connections until it restarts
        node.stop()
    all_down = time.time()
    time.sleep(OUTAGE_SECONDS)
    exit_code = scheduler.poll()  # None: still running
    for node in cluster.nodes:  # the same port, data dir (AOF) and nodes.conf
        node.start()
    back = time.time()
    wait_until(lambda: cluster_ok(cluster), 20, "the cluster in state ok again")

    ends = [
        e
        for e in body_events(log)
        if e["event"] == "end" and e["scheduled_at"] == body["scheduled_at"]
    ]
    assert not ends or ends[0]["at"] > all_down, "the body ended before the cluster went away"
    assert exit_code is None, (
        f"the scheduler exited ({exit_code}) while the cluster was unreachable:\n"
        f"{processes.log('scheduler')[-4000:]}"
    )

    def fires_again() -> bool:
        alive()
        return any(
            e.status == "succeeded" and e.scheduled_at.timestamp() > back
            for e in ledger(cluster, keys)
        )

    wait_until(fires_again, 25, f"a run of {JOB} fired after the cluster came back")
    wait_until(
        lambda: any(interrupted in fire_times(e) for e in ledger(cluster, keys)),
        10,
        "the interrupted run in the ledger",
    )
    alive()
    assert processes.terminate("scheduler") == 0, processes.log("scheduler")[-4000:]

    entries = ledger(cluster, keys)
    times = sorted(at for entry in entries for at in fire_times(entry))
    assert times.count(interrupted) == 1, [e for e in entries if interrupted in fire_times(e)]
    assert not duplicates(times), f"fire times with more than one ledger entry: {duplicates(times)}"
    killed_by = cluster_exception_tracebacks(processes.log("scheduler"))
    assert not killed_by, "RedisClusterException escaped:\n" + "\n\n".join(killed_by)


@pytest.mark.parametrize("kind", ["plain", "sentinel", "cluster"])
async def test_each_client_kind_raises_redis_trouble_when_redis_is_away(kind: str) -> None:
    """The one definition of Redis trouble covers what every client raises with nothing to
    reach: a plain client, a Sentinel client (no Sentinel answers), a Cluster client."""
    host, port = "127.0.0.1", free_port()  # nothing listens there
    if kind == "plain":
        settings = Settings(redis_url=f"redis://{host}:{port}/0")
    elif kind == "sentinel":
        settings = Settings(redis_url="redis://127.0.0.1/0", redis_sentinels=[(host, port)])
    else:
        settings = Settings(redis_url=f"redis://{host}:{port}/0", redis_cluster=True)
    with pytest.raises(REDIS_TROUBLE):
        async with async_redis(settings) as client:
            await client.get("x")
    with pytest.raises(REDIS_TROUBLE), sync_redis(settings) as client:
        client.get("x")
