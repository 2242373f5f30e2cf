"""The command channel outlives any failure to apply one command, and applies commands in the
order they were sent, also those a dead leader took and never finished."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings
from tickonce._control.channel import Command, Op, Outcome
from tickonce._storage.keys import Keys

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOBS = ["tests.support.control_jobs"]


@pytest.fixture
def settings(redis_server: RedisServer, make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )


@pytest.fixture
def leading(settings: Settings, client: redis.Redis) -> Iterator[Callable[[], TestClient]]:
    """Start the API in embedded mode (its worker leads) once the jobs are synced and the
    leader reads commands."""
    started: list[TestClient] = []
    keys = Keys(settings.key_prefix)

    def start() -> TestClient:
        http = TestClient(create_app(settings)).__enter__()
        started.append(http)
        wait_until(lambda: http.get("/scheduler").json()["leader"] is not None, 15, "a leader")
        wait_until(lambda: http.get("/jobs/greet").status_code == 200, 10, "jobs synced")
        wait_until(lambda: has_command_group(client, keys), 15, "the leader's command group")
        return http

    yield start
    for http in started:
        http.__exit__(None, None, None)


def has_command_group(client: redis.Redis, keys: Keys) -> bool:
    try:
        groups = client.xinfo_groups(keys.commands)
    except redis.ResponseError:  # no stream yet
        return False
    return any(group["name"] == keys.command_group for group in groups)


def command(op: Op, job_id: str) -> Command:
    now = datetime.now(UTC)
    return Command(
        id=uuid.uuid4().hex,
        op=op,
        job_id=job_id,
        created_at=now,
        deadline=now + timedelta(seconds=30),
    )


def outcome_of(client: redis.Redis, keys: Keys, sent: Command) -> Outcome | None:
    raw = client.get(keys.command_outcome(sent.id))
    outcome = Outcome.model_validate_json(raw) if raw else None
    return outcome if outcome and outcome.status == "done" else None


def test_a_command_that_cannot_be_applied_is_answered_and_the_channel_lives(
    leading: Callable[[], TestClient], client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    http = leading()
    # A stored job this code cannot load (written by another version, or damaged).
    client.hset(keys.jobs, "unreadable", "not a pickle")
    broken = command("pause", "unreadable")
    client.xadd(keys.commands, {"command": broken.model_dump_json()})

    answered = wait_until(lambda: outcome_of(client, keys, broken), 10, "an answer")
    assert answered is not None
    assert answered.code >= 400 and "unreadable" in answered.detail, answered
    paused = http.post("/jobs/greet/pause", headers=AUTH)
    assert paused.status_code == 200, f"the channel died with the failed command: {paused.text}"
    assert client.hexists(keys.jobs, "unreadable"), "a job it cannot load is kept"
    shown = http.get("/jobs/unreadable")
    assert shown.status_code == 500 and "cannot be loaded" in shown.json()["detail"]
    assert "unreadable" not in {job["id"] for job in http.get("/jobs").json()}


def test_commands_apply_in_the_order_they_were_sent(
    leading: Callable[[], TestClient], settings: Settings, client: redis.Redis, prefix: str
) -> None:
    keys = Keys(prefix)
    first = leading()
    first.__exit__(None, None, None)

    # A leader took "pause" and died before applying it; then "resume" was sent.
    pause, resume = command("pause", "greet"), command("resume", "greet")
    client.xadd(keys.commands, {"command": pause.model_dump_json()})
    client.xreadgroup(keys.command_group, "dead:1:0", {keys.commands: ">"}, count=1)
    client.xadd(keys.commands, {"command": resume.model_dump_json()})

    http = leading()
    for sent in (pause, resume):
        wait_until(partial(outcome_of, client, keys, sent), 15, f"{sent.op} applied")
    assert http.get("/jobs/greet").json()["paused"] is False, "the older pause landed last"


def test_a_command_sent_before_any_leader_served_commands_is_applied_by_the_first(
    leading: Callable[[], TestClient], client: redis.Redis, prefix: str
) -> None:
    """A fresh deployment: the API sends a change while the first scheduler is still starting
    (no consumer group exists yet). The first leader applies it; it is not skipped because it
    was written before the group."""
    keys = Keys(prefix)
    early = command("pause", "greet")
    client.xadd(keys.commands, {"command": early.model_dump_json()})
    http = leading()
    answered = wait_until(lambda: outcome_of(client, keys, early), 10, "the early command applied")
    assert answered is not None and answered.code == 200, answered
    assert http.get("/jobs/greet").json()["paused"] is True
