"""The drop-in recipe served by 0.2.0 and by this code against one Redis, overlapping (a
rolling deploy of a user's app) and in turn: every fire time of its job runs once with one
ledger entry; a job paused through 0.2.0's drop-in stays paused under this code's."""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.ledger_checks import assert_exactly_once, read_evidence
from tests.support.mixed_version_recipe import BEAT, SLEEPER, writes_key
from tests.support.processes import REPO, Processes, answers, wait_until
from tests.support.redis_server import RedisServer, free_port
from tests.support.releases import extract_release

pytestmark = pytest.mark.processes


def test_the_dropin_app_of_both_versions_against_one_redis(
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    tmp_path: Path,
) -> None:
    processes.env.update(REDIS_URL=redis_server.url)
    trees = {"old": extract_release("0.2.0", tmp_path / "tickonce-0.2.0"), "new": REPO}
    count = 0

    def app(version: str) -> tuple[str, str]:
        nonlocal count
        count += 1
        name, port = f"app-{count}-{version}", free_port()
        argv = [sys.executable, "-m", "gunicorn", "-w", "2", "-k", "uvicorn_worker.UvicornWorker"]
        argv += ["--bind", f"127.0.0.1:{port}", "tests.support.mixed_version_recipe:app"]
        processes.start_in(trees[version], name, argv)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: answers(f"{url}/job/{BEAT}"), 30, f"{name} serving")
        return name, url

    def writes(job_id: str) -> list[dict[str, object]]:
        return [
            record
            for record in (json.loads(i) for i in client.lrange(writes_key(prefix), 0, -1))
            if record["job"] == job_id
        ]

    def beats_by(module: str, after: int) -> int:
        return sum(1 for record in writes(BEAT)[after:] if record["release"] == module)

    def beaten(module: str, after: int) -> bool:
        return beats_by(module, after) >= 3

    old1, old1_url = app("old")
    wait_until(lambda: beats_by("services.core", 0) >= 3, 30, "0.2.0's drop-in firing")
    paused = httpx.post(f"{old1_url}/pause/{SLEEPER}", timeout=30)
    assert paused.status_code == 200 and paused.json()["paused"], paused.text
    time.sleep(1.5)
    sleeper_runs = len(writes(SLEEPER))

    steps = [("new", signal.SIGTERM), ("old", signal.SIGKILL), ("new", signal.SIGTERM)]
    current = old1
    for version, how in steps:
        name, url = app(version)
        time.sleep(3)  # both versions' workers contend
        mark = len(writes(BEAT))
        processes.signal(current, how)
        processes.started[current].wait(timeout=30)
        module = "services.core" if version == "old" else "tickonce"
        wait_until(
            functools.partial(beaten, module, mark),
            30,
            f"{name} firing after {current} stopped",
        )
        seen = httpx.get(f"{url}/job/{SLEEPER}", timeout=30).json()
        assert seen == {"id": SLEEPER, "found": True, "paused": True}, f"{name}: {seen}"
        current = name

    processes.terminate(current)
    assert len(writes(SLEEPER)) == sleeper_runs, "the paused job ran"
    problems = [
        f"{name}: {processes.log(name)[processes.log(name).index('Traceback') :][:1500]}"
        for name in processes.started
        if "Traceback" in processes.log(name)
    ]
    evidence = read_evidence(client, prefix, BEAT, own_writes_key=writes_key(prefix))
    assert_exactly_once(evidence, min_runs=15, allow_lost=True)
    assert not problems, "\n\n".join(problems)
