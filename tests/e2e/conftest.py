"""The whole stack from the real docker-compose.yml, started once for the e2e tests."""

from __future__ import annotations

import json
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from testcontainers.compose import DockerCompose

from tests.support.containers import docker_problem
from tests.support.processes import REPO
from tests.support.redis_server import free_port

TTL = 2.0
API_TOKEN = "e2e-token-0123456789abcdef"
API_REPLICAS = 3


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

    def compose_run(self, *args: str) -> str:
        command = [*self.compose.compose_command_property, *args]
        result = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=120, check=True
        )
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


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if (problem := docker_problem()) is not None:
        pytest.fail(f"Docker is not available ({problem}); the e2e tests need it.")
    port = free_port()
    password = secrets.token_hex(16)
    env_file = tmp_path_factory.mktemp("compose") / "e2e.env"
    env_file.write_text(
        "\n".join(
            [
                f"COMPOSE_PROJECT_NAME=tickonce-e2e-{uuid.uuid4().hex[:8]}",
                f"API_PORT={port}",
                f"REDIS_PASSWORD={password}",
                f"API_REPLICAS={API_REPLICAS}",
                "WEB_CONCURRENCY=2",
                "SCHEDULER_REPLICAS=2",
                f"LEASE_TTL_SECONDS={TTL}",
                "SHUTDOWN_GRACE_SECONDS=5",
                "SCHEDULER_STOP_GRACE_PERIOD=15s",
                "API_STOP_GRACE_PERIOD=15s",
                "JOBS_MODULES=services.jobs.examples,e2e_jobs",
                f"API_TOKEN={API_TOKEN}",
                "",
            ]
        )
    )
    compose = DockerCompose(
        context=REPO,
        compose_file_name=["docker-compose.yml", "tests/e2e/compose.e2e.yml"],
        env_file=str(env_file),
        build=True,
        wait=True,
    )
    try:
        compose.start()
        yield Stack(compose, f"http://127.0.0.1:{port}", password)
    finally:
        try:
            stdout, _ = compose.get_logs()
            print("---- compose logs (last lines) ----", *stdout.splitlines()[-60:], sep="\n")
        except Exception as exc:  # logs are a courtesy; removal below must still happen
            print(f"could not read compose logs: {exc}")
        compose.stop()  # down --volumes: containers, network and the redis volume
