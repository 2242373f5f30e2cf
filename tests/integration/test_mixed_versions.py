"""Release 0.2.0 and this code running AT THE SAME TIME against one Redis (a rolling deploy):
leadership passes from one version to the other and back (SIGKILL and SIGTERM of the leader),
commands go through one version's API and are applied by the other version's leader; with one
shard and with SCHEDULER_SHARDS=2. Every fire time must end as exactly one ledger entry, run at
most once; paused jobs stay paused; no process dies."""

from __future__ import annotations

import functools
import itertools
import json
import signal
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.ledger_checks import (
    Evidence,
    assert_exactly_once,
    duplicates,
    gaps,
    read_evidence,
)
from tests.support.mixed_version_jobs import (
    ALL,
    ALL_B,
    COALESCE,
    COALESCE_B,
    SLOW,
    ends_key,
    writes_key,
)
from tests.support.processes import REPO, Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.releases import extract_release
from tickonce._storage.keys import Keys, shard_of

pytestmark = pytest.mark.processes

TOKEN = "mixed-test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# API-created jobs: (id, created through, paused through); the -b ones are in shard 1 of 2.
API_JOBS = [
    ("api-paused-by-new", "old", "new"),
    ("api-paused-by-old", "new", "old"),
    ("api-paused-by-new-b", "old", "new"),
    ("api-paused-by-old-b", "new", "old"),
]


class Mixed:
    def __init__(self, processes: Processes, old_tree: Path, keys: Keys) -> None:
        self.processes = processes
        self.trees = {"old": old_tree, "new": REPO}
        self.keys = keys
        self.count = 0
        self.schedulers: dict[str, str] = {}  # process name -> version
        self.apis: dict[str, str] = {}  # version -> base url

    def scheduler(self, version: str) -> str:
        self.count += 1
        name = f"sched-{self.count}-{version}"
        self.processes.scheduler_in(self.trees[version], name)
        self.schedulers[name] = version
        return name

    def api(self, version: str) -> str:
        port = free_port()
        self.processes.gunicorn_in(self.trees[version], f"api-{version}", port, 1)
        url = f"http://127.0.0.1:{port}"
        self.apis[version] = url
        wait_until(lambda: answers(f"{url}/healthz"), 30, f"the {version} api")
        return url

    def leader_pid(self, client: redis.Redis, shard: int) -> int | None:
        token = client.get(self.keys.in_shard(shard).lease)
        return int(str(token).split("#")[0].split(":")[1]) if token else None

    def members(self, client: redis.Redis) -> dict[str, str]:
        infos = client.hgetall(self.keys.member_info)
        return {str(member): json.loads(info)["role"] for member, info in infos.items()}


def evidence(client: redis.Redis, prefix: str, keys: Keys, job_id: str) -> Evidence:
    return read_evidence(client, prefix, job_id, own_writes_key=writes_key(prefix), keys=keys)


@pytest.mark.parametrize("shards", [1, 2])
def test_two_versions_lead_in_turn_while_both_serve(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    tmp_path: Path,
    shards: int,
) -> None:
    processes.env.update(
        REDIS_URL=redis_server.url,
        JOBS_MODULES="tests.support.mixed_version_jobs",
        API_TOKEN=TOKEN,
        SCHEDULER_SHARDS=str(shards),
    )
    keys = Keys(prefix, shards, 0, shards > 1)
    mixed = Mixed(processes, extract_release("0.2.0", tmp_path / "tickonce-0.2.0"), keys)

    def written(job_id: str) -> list[int]:
        return evidence(client, prefix, keys, job_id).written_times

    def moved(shard: int, pid: int) -> bool:
        return mixed.leader_pid(client, shard) not in (None, pid)

    def grew(job_id: str, mark: int) -> bool:
        return len(written(job_id)) >= mark + 3

    mixed.scheduler("old")
    wait_until(lambda: mixed.leader_pid(client, 0), 30, "0.2.0 leading")
    mixed.scheduler("new")
    wait_until(lambda: len(mixed.members(client)) == 2, 30, "both schedulers as members")
    apis = {"old": mixed.api("old"), "new": mixed.api("new")}
    wait_until(lambda: len(written(ALL)) >= 2, 30, "the first runs")

    api_jobs = [(j, c, p) for j, c, p in API_JOBS if shards > 1 or not j.endswith("-b")]
    for job_id, create_via, pause_via in api_jobs:
        made = httpx.post(
            f"{apis[create_via]}/jobs",
            json={"id": job_id, "task": ALL, "trigger": {"type": "interval", "seconds": 1}},
            headers=AUTH,
            timeout=30,
        )
        assert made.status_code == 201, made.text
        wait_until(functools.partial(written, job_id), 20, f"{job_id}'s first run")
        paused = httpx.post(f"{apis[pause_via]}/jobs/{job_id}/pause", headers=AUTH, timeout=30)
        assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
    time.sleep(1.5)  # a run claimed just before the pause may still be writing
    paused_runs = {job_id: len(written(job_id)) for job_id, _, _ in api_jobs}

    leaders: list[str] = []
    killed: set[str] = set()
    for round_ in range(8):
        shard = round_ % shards
        watched = ALL if shard_of(ALL, shards) == shard else ALL_B
        pid = wait_until(
            functools.partial(mixed.leader_pid, client, shard), 30, f"a leader of {shard}"
        )
        assert pid is not None
        name = processes.by_pid(pid)
        assert name is not None, f"round {round_}: the leader {pid} is none of ours"
        version = mixed.schedulers[name]
        leaders.append(version)
        for other, proc in processes.started.items():
            assert other in killed or proc.poll() is None, (
                f"round {round_}: {other} exited: {proc.returncode}"
            )
        mark = len(written(watched))
        how = signal.SIGKILL if round_ % 2 == 0 else signal.SIGTERM
        processes.signal(name, how)
        processes.started[name].wait(timeout=30)
        killed.add(name)
        wait_until(
            functools.partial(moved, shard, pid),
            30,
            f"round {round_}: takeover of shard {shard}",
        )
        wait_until(functools.partial(grew, watched, mark), 30, f"round {round_}: firing")
        mixed.scheduler(version)  # the killed one comes back, same version
        wait_until(lambda: len(mixed.members(client)) >= 2, 30, f"round {round_}: a standby")
        time.sleep(1.0 + shards)  # with shards, the balance hands one over
        for api in apis.values():
            for job_id, _, _ in api_jobs:
                seen = httpx.get(f"{api}/jobs/{job_id}", headers=AUTH, timeout=10)
                assert seen.status_code == 200, f"round {round_}: {api}: {seen.text}"
                assert seen.json()["paused"] is True, f"round {round_}: {job_id} unpaused"

    assert "old" in leaders and "new" in leaders, leaders
    for name in list(processes.started):
        if processes.started[name].poll() is None:
            processes.terminate(name)
    problems = []
    for name in processes.started:
        log = processes.log(name)
        if "Traceback" in log:
            problems.append(f"{name}: {log[log.index('Traceback') :][:1500]}")
    for job_id, _, _ in api_jobs:
        assert len(written(job_id)) == paused_runs[job_id], f"{job_id} ran paused"
    for job_id in (ALL, ALL_B):
        assert_exactly_once(evidence(client, prefix, keys, job_id), min_runs=30, allow_lost=True)
    for job_id in (COALESCE, COALESCE_B):
        found = evidence(client, prefix, keys, job_id)
        assert not duplicates(found.ledger_times), (job_id, duplicates(found.ledger_times))
        assert not duplicates(found.written_times), (job_id, duplicates(found.written_times))
        assert not gaps(found.ledger_times), (job_id, gaps(found.ledger_times))
    assert_exactly_once(evidence(client, prefix, keys, SLOW), min_runs=5, allow_lost=True)
    ran = sorted(
        (end["start"], end["end"])
        for end in (json.loads(item) for item in client.lrange(ends_key(prefix), 0, -1))
    )
    overlaps = [(a, b) for a, b in itertools.pairwise(ran) if b[0] < a[1]]
    assert not overlaps, f"max_instances=1 runs overlapped: {overlaps}"
    assert not problems, "\n\n".join(problems)
