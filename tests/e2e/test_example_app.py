"""The example team app (examples/myapp) through the compose stack, added the way a user adds
their own: the api containers serve it (APP_MODULE), the scheduler containers fire its jobs
(JOBS_MODULES), both with its code mounted. Its route answers, its jobs run once per fire time,
and tickonce's API and status page are under its prefix."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from testcontainers.compose import DockerCompose

from tests.support.containers import docker_problem
from tests.support.processes import REPO, wait_until
from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def myapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack with the example app; its base URL."""
    if (problem := docker_problem()) is not None:
        pytest.fail(f"Docker is not available ({problem}); the e2e tests need it.")
    port = free_port()
    env_file: Path = tmp_path_factory.mktemp("myapp") / "myapp.env"
    env_file.write_text(
        "\n".join(
            [
                f"COMPOSE_PROJECT_NAME=tickonce-myapp-{uuid.uuid4().hex[:8]}",
                f"API_PORT={port}",
                f"REDIS_PASSWORD={secrets.token_hex(16)}",
                "API_REPLICAS=2",
                "WEB_CONCURRENCY=2",
                "SCHEDULER_REPLICAS=2",
                "LEASE_TTL_SECONDS=2",
                "SHUTDOWN_GRACE_SECONDS=5",
                "SCHEDULER_STOP_GRACE_PERIOD=15s",
                "API_STOP_GRACE_PERIOD=15s",
                "",
            ]
        )
    )
    compose = DockerCompose(
        context=REPO,
        compose_file_name=["docker-compose.yml", "examples/myapp/compose.yml"],
        env_file=str(env_file),
        build=True,
        wait=True,
    )
    try:
        compose.start()
        yield f"http://127.0.0.1:{port}"
    finally:
        try:
            stdout, _ = compose.get_logs()
            print("---- compose logs (last lines) ----", *stdout.splitlines()[-60:], sep="\n")
        except Exception as exc:  # logs are a courtesy; removal below must still happen
            print(f"could not read compose logs: {exc}")
        compose.stop()


def to_ms(moment: str) -> datetime:
    """A time as the ledger keeps it: in whole milliseconds."""
    at = datetime.fromisoformat(moment)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def get(base: str, path: str) -> Any:
    answer = httpx.get(base + path, timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_the_example_app_serves_its_routes_and_its_jobs_run_once(myapp: str) -> None:
    assert get(myapp, "/hello?name=ops") == {"hello": "ops"}, "the app's own route"
    assert httpx.get(myapp + "/healthz", timeout=10).status_code == 404, "not the app's route"
    assert get(myapp, "/tickonce/healthz") == {"status": "ok"}

    def roles() -> list[str]:
        return sorted(member["role"] for member in get(myapp, "/tickonce/scheduler")["members"])

    wait_until(lambda: roles() == ["leader", "standby"], 30, "a leader and a standby")
    wait_until(
        lambda: (
            [job["id"] for job in get(myapp, "/tickonce/jobs")]
            == ["myapp-heartbeat", "myapp-report"]
        ),
        30,
        "the app's two jobs in the schedule",
    )

    wait_until(lambda: len(get(myapp, "/beats")) >= 5, 40, "five heartbeats")
    beats: dict[str, int] = get(myapp, "/beats")
    assert set(beats.values()) == {1}, f"a heartbeat fire time ran more than once: {beats}"
    runs = get(myapp, "/tickonce/jobs/myapp-heartbeat/runs?limit=100")
    succeeded = {to_ms(run["scheduled_at"]) for run in runs if run["status"] == "succeeded"}
    assert len(succeeded) == len([r for r in runs if r["status"] == "succeeded"])
    assert succeeded <= {to_ms(at) for at in get(myapp, "/beats")}, (
        "every run the ledger has succeeded counted itself"
    )

    page = httpx.get(myapp + "/tickonce/", timeout=10)
    assert page.status_code == 200 and 'const BASE = "/tickonce";' in page.text
