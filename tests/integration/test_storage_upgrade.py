"""A Redis written by release 0.2.0 survives an upgrade to this code, a rollback to 0.2.0 and
an upgrade again, on real processes: its jobs keep loading and firing, an API-created job stays
paused, a fired one-off job never runs again, and no fire time runs twice."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.processes import REPO, Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.releases import extract_release
from tests.support.upgrade_jobs import EVERY_SECOND, ONCE, runs_key
from tickonce._storage.keys import Keys
from tickonce._storage.layout import STORAGE_FORMAT

pytestmark = pytest.mark.processes

TOKEN = "upgrade-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
API_MADE = "api-made"


class Deployment:
    """One version's scheduler and api at a time, against one Redis."""

    def __init__(self, processes: Processes, client: redis.Redis, prefix: str, port: int) -> None:
        self.processes = processes
        self.client = client
        self.prefix = prefix
        self.api = f"http://127.0.0.1:{port}"
        self.port = port
        self.phase = 0

    def runs(self) -> list[dict[str, str]]:
        return [json.loads(item) for item in self.client.lrange(runs_key(self.prefix), 0, -1)]

    def runs_of(self, job_id: str) -> list[dict[str, str]]:
        return [run for run in self.runs() if run["job"] == job_id]

    def start(self, version: str, tree: Path) -> str:
        """Start ``version``'s scheduler and api from ``tree``; wait until it fires; returns the
        name of the phase (its processes' log names)."""
        self.phase += 1
        name = f"{self.phase}-{version}"
        scheduler = self.processes.scheduler_in(tree, f"{name}-scheduler")
        self.processes.gunicorn_in(tree, f"{name}-api", self.port, 1)
        before = len(self.runs_of(EVERY_SECOND))
        wait_until(lambda: answers(f"{self.api}/healthz"), 30, f"{name}'s api")
        pid = f":{scheduler.pid}:"
        wait_until(
            lambda: sum(pid in run["runner"] for run in self.runs_of(EVERY_SECOND)) >= 3,
            30,
            f"{name}'s scheduler firing {EVERY_SECOND}",
        )
        assert len(self.runs_of(EVERY_SECOND)) > before
        return name

    def stop(self, name: str) -> None:
        assert self.processes.terminate(f"{name}-api") == 0
        assert self.processes.terminate(f"{name}-scheduler") == 0

    def check_state(self, name: str, paused_runs: int) -> None:
        """What 0.2.0 left must hold under every version."""
        job = httpx.get(f"{self.api}/jobs/{API_MADE}", headers=AUTH, timeout=10)
        assert job.status_code == 200, f"{name}: GET /jobs/{API_MADE}: {job.text}"
        assert job.json()["paused"] is True, f"{name}: the paused job came back unpaused"
        listed = httpx.get(f"{self.api}/jobs", headers=AUTH, timeout=10)
        assert listed.status_code == 200, f"{name}: GET /jobs: {listed.text}"
        assert len(self.runs_of(API_MADE)) == paused_runs, f"{name}: the paused job ran"
        assert len(self.runs_of(ONCE)) == 1, f"{name}: the fired one-off job ran again"
        times = Counter((run["job"], run["at"]) for run in self.runs())
        twice = [key for key, count in times.items() if count > 1]
        assert not twice, f"{name}: fire times run twice: {twice}"


@pytest.fixture
def release_0_2_0(tmp_path: Path) -> Path:
    return extract_release("0.2.0", tmp_path / "tickonce-0.2.0")


def test_a_redis_written_by_0_2_0_survives_upgrade_rollback_and_upgrade(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    release_0_2_0: Path,
) -> None:
    once_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    processes.env.update(
        REDIS_URL=redis_server.url,
        JOBS_MODULES="tests.support.upgrade_jobs",
        UPGRADE_ONCE_AT=once_at.isoformat(),
        API_TOKEN=TOKEN,
    )
    deployment = Deployment(processes, client, prefix, free_port())

    # 0.2.0 writes the data: its jobs, a fired one-off job, an API-created job, paused.
    old = deployment.start("0.2.0", release_0_2_0)
    wait_until(lambda: deployment.runs_of(ONCE), 30, "the one-off job's run under 0.2.0")
    created = httpx.post(
        f"{deployment.api}/jobs",
        json={"id": API_MADE, "task": EVERY_SECOND, "trigger": {"type": "interval", "seconds": 1}},
        headers=AUTH,
        timeout=20,
    )
    assert created.status_code == 201, created.text
    wait_until(lambda: deployment.runs_of(API_MADE), 20, "the API-created job's first run")
    paused = httpx.post(f"{deployment.api}/jobs/{API_MADE}/pause", headers=AUTH, timeout=20)
    assert paused.status_code == 200 and paused.json()["paused"] is True, paused.text
    paused_runs = len(deployment.runs_of(API_MADE))
    deployment.check_state(old, paused_runs)
    assert client.get(Keys(prefix).storage_format) is None, "0.2.0 records no format"
    deployment.stop(old)

    for version, tree in [("new", REPO), ("0.2.0", release_0_2_0), ("new", REPO)]:
        phase = deployment.start(version, tree)
        deployment.check_state(phase, paused_runs)
        deployment.stop(phase)
        assert client.get(Keys(prefix).storage_format) == str(STORAGE_FORMAT), (
            f"{phase}: the storage format is not recorded"
        )
