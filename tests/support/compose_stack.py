"""A compose project of the real docker-compose.yml (plus overrides) for the e2e tests: up with
an env file of its own, always taken down (containers, network, volumes), its logs shown."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
from testcontainers.compose import DockerCompose

from tests.support.containers import docker_problem
from tests.support.processes import REPO


def stack_env(port: int, **overrides: str) -> dict[str, str]:
    """The .env of a test stack: its published port, a fresh Redis password, a short lease
    (2 s) and short grace periods, two schedulers; ``overrides`` on top."""
    return {
        "API_PORT": str(port),
        "REDIS_PASSWORD": secrets.token_hex(16),
        "API_REPLICAS": "1",
        "WEB_CONCURRENCY": "2",
        "SCHEDULER_REPLICAS": "2",
        "LEASE_TTL_SECONDS": "2",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "SCHEDULER_STOP_GRACE_PERIOD": "15s",
        "API_STOP_GRACE_PERIOD": "15s",
        **overrides,
    }


@contextmanager
def compose_project(
    workdir: Path, name: str, overrides: list[str], env: Mapping[str, str]
) -> Iterator[DockerCompose]:
    """``docker compose up --build --wait`` of docker-compose.yml and ``overrides`` (paths from
    the repository root) with ``env`` as its .env, under a project name of its own."""
    if (problem := docker_problem()) is not None:
        pytest.fail(f"Docker is not available ({problem}); the e2e tests need it.")
    env_file = workdir / f"{name}.env"
    project = f"COMPOSE_PROJECT_NAME={name}-{uuid.uuid4().hex[:8]}"
    env_file.write_text("\n".join([project, *(f"{k}={v}" for k, v in env.items()), ""]))
    compose = DockerCompose(
        context=REPO,
        compose_file_name=["docker-compose.yml", *overrides],
        env_file=str(env_file),
        build=True,
        wait=True,
    )
    try:
        compose.start()
        yield compose
    finally:
        try:
            stdout, _ = compose.get_logs()
            print("---- compose logs (last lines) ----", *stdout.splitlines()[-60:], sep="\n")
        except Exception as exc:  # logs are a courtesy; removal below must still happen
            print(f"could not read compose logs: {exc}")
        compose.stop()  # down --volumes: containers, network and the redis volume
