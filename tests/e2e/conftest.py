"""The whole stack from the real docker-compose.yml, started once for the e2e tests.

Tests kill containers, restart Redis and scale replicas. So that none depends on what ran
before it, each test gets the stack through the ``stack`` fixture, which first brings it back
to its known state (``Stack.restore``): the replicas it started with, all running, one leader
and one standby, every api replica behind the load balancer, the heartbeat firing.
"""

from __future__ import annotations

import functools
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from testcontainers.compose import DockerCompose

from tests.support.cluster import host_of
from tests.support.compose_stack import compose_project, stack_env
from tests.support.processes import REPO, wait_until
from tests.support.redis_server import free_port

TTL = 2.0
API_TOKEN = "e2e-token-0123456789abcdef"
API_REPLICAS = 3
SCHEDULER_REPLICAS = 2


@dataclass
class Stack:
    compose: DockerCompose
    base_url: str
    redis_password: str
    prefix: str = "tickonce:"

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10)

    def get(self, path: str, **params: Any) -> Any:
        with self.http() as client:
            response = client.get(path, params=params)
            response.raise_for_status()
            return response.json()

    def compose_run(self, *args: str, timeout: float = 120) -> str:
        command = [*self.compose.compose_command_property, *args]
        try:
            result = subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=True
            )
        except subprocess.CalledProcessError as exc:
            raise AssertionError(f"{' '.join(args)} failed: {exc.stderr[-2000:]}") from exc
        return result.stdout

    def redis(self, *command: str) -> str:
        """A redis-cli command inside the redis container (Redis is not published)."""
        stdout, _, _ = self.compose.exec_in_container(
            ["redis-cli", "--no-auth-warning", "-a", self.redis_password, *command], "redis"
        )
        return stdout

    def containers(self, service: str, *, include_stopped: bool = False) -> list[dict[str, Any]]:
        """`docker inspect` of the service's containers (running ones unless told otherwise)."""
        ids = self.compose_run("ps", "-q", *(["-a"] if include_stopped else []), service).split()
        if not ids:
            return []
        result = subprocess.run(
            ["docker", "inspect", *ids], capture_output=True, text=True, timeout=30, check=True
        )
        inspected: list[dict[str, Any]] = json.loads(result.stdout)
        return inspected

    def container_logs(self, container_id: str, since: float) -> str:
        result = subprocess.run(
            ["docker", "logs", "--since", f"{since:.3f}", container_id],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        return result.stdout + result.stderr

    def scheduler_hosts(self) -> set[str]:
        """Hostnames of the running scheduler containers (the host part of their member ids)."""
        return {c["Config"]["Hostname"] for c in self.containers("scheduler")}

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def served_by(self, container_id: str, *, since: float) -> bool:
        """Whether requests through the load balancer reach this api container (its log shows
        a request marked for this check)."""
        marker = uuid.uuid4().hex
        try:
            with self.http() as client:
                for _ in range(4 * API_REPLICAS):
                    client.get("/healthz", params={"probe": marker}).raise_for_status()
        except httpx.HTTPError:
            return False
        return marker in self.container_logs(container_id, since)

    def cluster_settled(self) -> bool:
        """The running schedulers are exactly the live members: one leader, one standby."""
        try:
            found = self.get("/scheduler")
        except httpx.HTTPError:
            return False
        hosts = {host_of(member["id"]) for member in found["members"]}
        roles = sorted(member["role"] for member in found["members"])
        return (
            roles == ["leader", "standby"]
            and hosts == self.scheduler_hosts()
            and len(hosts) == SCHEDULER_REPLICAS
        )

    def heartbeat_since(self, moment: float) -> bool:
        """Whether a heartbeat scheduled at ``moment`` or later has succeeded."""
        try:
            runs: list[dict[str, Any]] = self.get("/jobs/heartbeat/runs", limit=20)
        except httpx.HTTPError:
            return False
        return any(
            run["status"] == "succeeded"
            and datetime.fromisoformat(run["scheduled_at"]).timestamp() >= moment
            for run in runs
        )

    def restore(self) -> None:
        """Back to the stack as started, whatever earlier tests did to it: a container killed
        is started again, a replica added by scale is removed, Redis is up; then wait until
        the cluster shows it (see the module docstring)."""
        began = time.time()
        self.compose_run(
            "up",
            "--detach",
            "--no-build",
            "--no-recreate",
            "--wait",
            "--wait-timeout",
            "100",
            "--scale",
            f"api={API_REPLICAS}",
            "--scale",
            f"scheduler={SCHEDULER_REPLICAS}",
            timeout=110,
        )
        wait_until(self.ready, 30, "the API ready through the load balancer")
        api = [c["Id"] for c in self.containers("api")]
        assert len(api) == API_REPLICAS, f"api containers running: {len(api)}"
        assert len(self.scheduler_hosts()) == SCHEDULER_REPLICAS
        wait_until(self.cluster_settled, 30, "the running schedulers as leader and standby")
        for container_id in api:
            wait_until(
                functools.partial(self.served_by, container_id, since=began),
                30,
                f"requests through the load balancer reaching api container {container_id[:12]}",
                interval=0.5,
            )
        settled = time.time()
        wait_until(lambda: self.heartbeat_since(settled), 15, "a heartbeat after the restore")


@pytest.fixture(scope="session")
def compose_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    port = free_port()
    env = stack_env(
        port,
        API_REPLICAS=str(API_REPLICAS),
        SCHEDULER_REPLICAS=str(SCHEDULER_REPLICAS),
        LEASE_TTL_SECONDS=str(TTL),
        JOBS_MODULES="services.jobs.examples,e2e_jobs",
        API_TOKEN=API_TOKEN,
    )
    workdir = tmp_path_factory.mktemp("compose")
    with compose_project(workdir, "tickonce-e2e", ["tests/e2e/compose.e2e.yml"], env) as compose:
        yield Stack(compose, f"http://127.0.0.1:{port}", env["REDIS_PASSWORD"])


@pytest.fixture
def stack(compose_stack: Stack) -> Stack:
    """The session's stack, brought back to its known state for this test."""
    compose_stack.restore()
    return compose_stack
