"""The HA compose stack (docker-compose.ha.yml): Redis as a primary, two replicas and three
Sentinels, durable claims on (CLAIM_MIN_REPLICAS=1). The primary's container is killed under
load (the 1-s heartbeat, two schedulers, API requests): the Sentinels promote a replica, the
schedulers and the api follow by themselves, and no heartbeat fire time runs twice."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.compose_stack import compose_project, stack_env
from tests.support.processes import REPO, wait_until
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.chaos]


class HaStack:
    def __init__(self, compose: Any, base: str) -> None:
        self.compose = compose
        self.base = base

    def get(self, path: str) -> Any:
        answer = httpx.get(self.base + path, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def primary(self) -> str:
        """The primary's host name as Sentinel 1 gives it."""
        stdout, _, _ = self.compose.exec_in_container(
            ["redis-cli", "-p", "26379", "sentinel", "get-master-addr-by-name", "mymaster"],
            "sentinel-1",
        )
        return str(stdout.split()[0]) if stdout.split() else ""

    def kill(self, service: str) -> None:
        """``docker compose kill``: SIGKILL, as abrupt as a crash."""
        command = [*self.compose.compose_command_property, "kill", service]
        subprocess.run(command, cwd=REPO, check=True, timeout=60, capture_output=True)

    def heartbeats(self) -> list[dict[str, Any]]:
        try:
            runs: list[dict[str, Any]] = self.get("/jobs/heartbeat/runs?limit=200")
        except httpx.HTTPError:
            return []
        return runs


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    port = free_port()
    env = stack_env(port, CLAIM_MIN_REPLICAS="1")
    workdir = tmp_path_factory.mktemp("ha")
    with compose_project(workdir, "tickonce-ha", ["docker-compose.ha.yml"], env) as compose:
        yield HaStack(compose, f"http://127.0.0.1:{port}")


def test_a_killed_primary_is_replaced_and_followed_with_no_fire_time_twice(ha: HaStack) -> None:
    def succeeded_since(moment: float) -> int:
        return sum(
            run["status"] == "succeeded"
            and datetime.fromisoformat(run["scheduled_at"]).timestamp() >= moment
            for run in ha.heartbeats()
        )

    wait_until(lambda: succeeded_since(0) >= 3, 60, "three heartbeats before the fault")
    old = ha.primary()
    assert old == "redis", f"the first primary is the redis service, not {old!r}"
    killed = time.time()
    ha.kill("redis")
    wait_until(lambda: ha.primary() not in ("", old), 60, "the Sentinels promoting a replica")
    wait_until(lambda: succeeded_since(killed + 1) >= 5, 60, "heartbeats on the new primary")
    members = ha.get("/scheduler")["members"]
    assert sorted(member["role"] for member in members) == ["leader", "standby"]

    runs = ha.heartbeats()
    times = Counter(run["scheduled_at"] for run in runs if run["status"] != "skipped")
    assert not [t for t, n in times.items() if n > 1], f"recorded twice: {times.most_common(3)}"
    refused = [run for run in runs if run["reason"] == "claim_not_durable"]
    print(f"primary {old} killed; {len(refused)} fire time(s) refused as not durable meanwhile")
