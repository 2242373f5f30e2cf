"""The example team app (examples/myapp) through the compose stack, added the way a user adds
their own: the api containers serve it (APP_MODULE), the scheduler containers fire its jobs
(JOBS_MODULES), both with its code mounted. Its route answers, its jobs run once per fire time,
and tickonce's API and status page are under its prefix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.compose_stack import compose_project, stack_env
from tests.support.processes import wait_until
from tests.support.redis_server import free_port


@pytest.fixture(scope="module")
def myapp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The stack with the example app; its base URL."""
    port = free_port()
    env = stack_env(port, API_REPLICAS="2")
    workdir = tmp_path_factory.mktemp("myapp")
    with compose_project(workdir, "tickonce-myapp", ["examples/myapp/compose.yml"], env):
        yield f"http://127.0.0.1:{port}"


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
