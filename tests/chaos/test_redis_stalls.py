"""Redis stalls for a moment (``DEBUG SLEEP``) while the leader sends a wakeup's claims: the
client's retry re-sends them, Redis executes them twice, and still every fire time runs once
and ends as exactly one ledger entry."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from tests.support.cluster import leader_id
from tests.support.ledger_checks import fire_times
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.keys import Keys

pytestmark = [pytest.mark.chaos, pytest.mark.processes]

# The jobs of tests.support.stall_jobs, named here: importing that module would register its
# 300 jobs in this process too, for every embedded leader of other tests to run.
WITNESS = "witness"
LOAD = [f"second-{n:03d}" for n in range(300)]


def witness_key(prefix: str) -> str:
    return Keys(prefix).example(WITNESS)


TTL = 2.0  # the firing client's timeout is ttl/10 = 0.2 s, with one retry
STALLS = 5


def test_fires_survive_redis_stalls_in_the_middle_of_a_wakeup(
    private_redis: RedisServer, processes: Processes, prefix: str
) -> None:
    client = private_redis.client()
    keys = Keys(prefix)
    env = {"REDIS_URL": private_redis.url, "JOBS_MODULES": "tests.support.stall_jobs"}
    processes.scheduler("scheduler-1", **env)
    wait_until(lambda: client.llen(witness_key(prefix)) >= 3, 30, "the witness to run")
    leader = leader_id(client, prefix)

    for _ in range(STALLS):
        # 300 jobs are due at every whole second; their claims leave a few ms into it. A stall
        # of 1.5 x the client's timeout makes the first attempt time out and the retry wait.
        now = time.time()
        private_redis.stall(0.3, after=(int(now) + 1.004) - now).join(timeout=5)
        time.sleep(0.5)
    time.sleep(3 * TTL)  # past the lost-run sweep and the running slots' window
    stopped_at = time.time()
    assert processes.terminate("scheduler-1") == 0
    assert leader_id(client, prefix) in (None, leader)

    def ledger(job_id: str) -> list[RunRecord]:
        return [RunRecord.from_fields(f) for _, f in client.xrange(keys.ledger(job_id)) or []]

    problems: Counter[str] = Counter()
    for job_id in [WITNESS, *LOAD]:
        entries = [e for e in ledger(job_id) if e.scheduled_at.timestamp() < stopped_at - 1]
        times = Counter(time for entry in entries for time in fire_times(entry))
        problems.update(f"{job_id} recorded twice" for t, n in times.items() if n > 1)
        problems.update(f"{e.status}:{e.reason}" for e in entries if e.status != "succeeded")
    assert not problems, f"fires that did not run exactly once: {problems.most_common(8)}"

    witnessed = Counter(
        json.loads(item)["at"] for item in client.lrange(witness_key(prefix), 0, -1)
    )
    succeeded = {fire_ms(e.scheduled_at) for e in ledger(WITNESS) if e.status == "succeeded"}
    assert all(n == 1 for n in witnessed.values()), "the witness ran a fire time twice"
    assert set(witnessed) == succeeded, "the witness's own record and the ledger disagree"
