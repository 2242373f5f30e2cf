"""Changing schedules at run time: commands to the leader, auth, validation."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from tests.support.control_jobs import greetings_key
from tests.support.leading import paused_leader
from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings
from tickonce._control.apply import Control
from tickonce._control.channel import Command, CommandConsumer, Outcome
from tickonce._exceptions import NotLeaderError
from tickonce._jobs.registry import Registry
from tickonce._jobs.retention import JobRetention
from tickonce._leadership.fencing import LeaderTerm
from tickonce._storage.keys import Keys

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JOBS = ["tests.support.control_jobs"]


def leading_app(settings: Settings) -> TestClient:
    """The API in embedded mode: its own worker leads and applies the commands."""
    return TestClient(create_app(settings))


def wait_for_leader(http: TestClient) -> None:
    wait_until(lambda: http.get("/scheduler").json()["leader"] is not None, 15, "a leader")


@pytest.fixture
def http(redis_server: RedisServer, make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    settings = make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )
    with leading_app(settings) as client:
        wait_for_leader(client)
        wait_until(lambda: client.get("/jobs/greet").status_code == 200, 10, "jobs synced")
        yield client


def test_changes_need_the_token(
    http: TestClient, redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    missing = http.post("/jobs/greet/pause")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = http.post("/jobs/greet/pause", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong token"}
    assert http.get("/jobs/greet").status_code == 200, "reads stay open by default"

    with TestClient(create_app(make_settings(redis_server, jobs_modules=JOBS))) as no_token:
        refused = no_token.post("/jobs/greet/pause", headers=AUTH)
        assert refused.status_code == 403
        assert "set API_TOKEN" in refused.json()["detail"]

    closed = make_settings(
        redis_server, api_token=TOKEN, api_read_token_required=True, jobs_modules=JOBS
    )
    with TestClient(create_app(closed)) as reads_closed:
        assert reads_closed.get("/jobs").status_code == 401
        assert reads_closed.get("/jobs", headers=AUTH).status_code == 200


def test_pause_resume_and_run_now(http: TestClient, client: redis.Redis, prefix: str) -> None:
    paused = http.post("/jobs/greet/pause", headers=AUTH)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert http.post("/jobs/greet/pause", headers=AUTH).json()["paused"] is True, "idempotent"
    assert http.get("/jobs/greet").json()["next_run_time"] is None

    resumed = http.post("/jobs/greet/resume", headers=AUTH).json()
    assert resumed["paused"] is False and resumed["next_run_time"] is not None

    assert http.post("/jobs/greet/run", headers=AUTH).status_code == 200
    runs = wait_until(lambda: http.get("/jobs/greet/runs").json(), 10, "the manual run")
    assert [(run["status"], run["manual"]) for run in runs] == [("succeeded", True)]
    assert [json.loads(g)["job"] for g in client.lrange(greetings_key(prefix), 0, -1)] == ["greet"]
    assert http.post("/jobs/nope/run", headers=AUTH).status_code == 404


def test_patch_changes_trigger_and_options_and_keeps_paused_state(http: TestClient) -> None:
    http.post("/jobs/greet/pause", headers=AUTH)
    body = {
        "trigger": {"type": "cron", "expression": "30 6 * * 1-5", "timezone": "Europe/Berlin"},
        "max_instances": 3,
        "misfire_grace_time": None,
        "kwargs": {"name": "team"},
    }
    changed = http.patch("/jobs/greet", json=body, headers=AUTH)
    assert changed.status_code == 200, changed.text
    job = changed.json()
    assert job["trigger"].startswith("cron[") and "hour='6'" in job["trigger"]
    assert (job["paused"], job["max_instances"], job["misfire_grace_time"], job["kwargs"]) == (
        True,
        3,
        None,
        {"name": "team"},
    )

    resumed = http.post("/jobs/greet/resume", headers=AUTH).json()
    next_run = datetime.fromisoformat(resumed["next_run_time"])
    assert next_run.astimezone(UTC).minute == 30


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"trigger": {"type": "interval", "seconds": 0}}, "longer than zero"),
        ({"trigger": {"type": "interval", "seconds": -5}}, "greater than or equal to 0"),
        ({"trigger": {"type": "cron", "expression": "61 * * * *"}}, "invalid cron"),
        ({"trigger": {"type": "cron", "hour": 1, "timezone": "Mars/Olympus"}}, "unknown timezone"),
        ({"trigger": {"type": "date", "run_date": "2001-01-01T00:00:00"}}, "never fires"),
        ({"trigger": {"type": "hourly"}}, "does not match any of the expected tags"),
        ({"kwargs": {"nope": 1}}, "kwargs do not fit"),
        ({"max_instances": 0}, "greater than or equal to 1"),
        ({}, "nothing to change"),
        ({"colour": "red"}, "Extra inputs are not permitted"),
        ({"timeout": -1}, "greater than 0"),
        ({"catch_up": "sometimes"}, "Input should be 'coalesce', 'all' or 'skip'"),
        ({"overlap": "allow 2"}, "overlap was removed in tickonce 0.2; use max_instances"),
        ({"coalesce": False}, "coalesce was removed in tickonce 0.2; use catch_up"),
    ],
)
def test_bad_changes_are_refused_saying_what_to_fix(
    http: TestClient, body: dict[str, Any], says: str
) -> None:
    answer = http.patch("/jobs/greet", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert says in answer.text


def test_create_and_delete_a_schedule_of_a_registered_task(
    http: TestClient, client: redis.Redis, prefix: str
) -> None:
    body = {
        "id": "greet-ops",
        "task": "greet",
        "kwargs": {"name": "ops", "times": 2},
        "trigger": {"type": "interval", "hours": 1},
        "catch_up": "all",
    }
    created = http.post("/jobs", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["task"] == "greet" and created.json()["kwargs"] == body["kwargs"]
    assert http.post("/jobs", json=body, headers=AUTH).status_code == 409

    http.post("/jobs/greet-ops/run", headers=AUTH)
    wait_until(lambda: client.llen(greetings_key(prefix)), 10, "the new schedule's run")
    assert json.loads(client.lindex(greetings_key(prefix), 0) or "{}") == {
        "job": "greet-ops",
        "name": "ops",
        "times": 2,
    }

    assert http.delete("/jobs/greet-ops", headers=AUTH).status_code == 204
    assert http.get("/jobs/greet-ops").status_code == 404
    assert http.get("/jobs/greet-ops/runs").json()[0]["manual"] is True, "history stays"
    code_defined = http.delete("/jobs/greet", headers=AUTH)
    assert code_defined.status_code == 409 and "defined in code" in code_defined.text


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"task": "rm -rf"}, "unknown task 'rm -rf'; registered tasks:"),
        ({"task": "services.jobs.examples:tick"}, "unknown task"),
        ({"kwargs": {"name": 1, "bogus": 2}}, "kwargs do not fit"),
        ({"id": "has space"}, "String should match pattern"),
        ({"kwargs": {"name": "x" * 20_000}}, "larger than"),
    ],
)
def test_bad_new_schedules_are_refused(http: TestClient, body: dict[str, Any], says: str) -> None:
    valid = {"id": "new-one", "task": "greet", "trigger": {"type": "interval", "hours": 1}}
    answer = http.post("/jobs", json={**valid, **body}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert says in answer.text


def test_oversized_payloads_are_refused(http: TestClient) -> None:
    answer = http.post(
        "/jobs",
        content=b"{" + b" " * 70_000 + b"}",
        headers={**AUTH, "content-type": "application/json"},
    )
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]


def stream_id(entry_id: str) -> tuple[int, int]:
    milliseconds, sequence = entry_id.split("-")
    return int(milliseconds), int(sequence)


def test_without_a_leader_a_change_is_refused_and_never_applied_later(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    keys = Keys(prefix)

    def group() -> dict[str, Any] | None:
        groups: list[dict[str, Any]] = client.xinfo_groups(keys.commands)
        return next((g for g in groups if g["name"] == keys.command_group), None)

    with leading_app(
        make_settings(redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS)
    ) as first:
        wait_for_leader(first)
        wait_until(lambda: first.get("/jobs/greet").status_code == 200, 10, "jobs synced")
        # The group exists before the command is sent, so the next leader is delivered it
        # (a group created later, at "$", would skip it and this test would prove nothing).
        wait_until(lambda: client.exists(keys.commands) and group(), 10, "the command group")
    no_leader = make_settings(
        redis_server, api_token=TOKEN, jobs_modules=JOBS, command_timeout_seconds=1.0
    )
    with TestClient(create_app(no_leader)) as http:
        refused = http.post("/jobs/greet/pause", headers=AUTH)
        assert refused.status_code == 503
        assert "not applied" in refused.json()["detail"]

    entries = cast(list[tuple[str, dict[str, str]]], client.xrange(keys.commands))
    [(entry_id, fields)] = entries
    command = Command.model_validate_json(fields["command"])
    assert (command.op, command.job_id) == ("pause", "greet")
    outcome_key = keys.command_outcome(command.id)

    def outcome() -> Outcome:
        raw = client.get(outcome_key)
        assert raw is not None, "the command's outcome key is gone"
        return Outcome.model_validate_json(raw)

    assert outcome().status == "expired", "the sender marked it expired when it gave up"

    with leading_app(
        make_settings(redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS)
    ) as later:
        wait_for_leader(later)

        def consumed() -> bool:
            """The new leader was delivered the entry and acknowledged it: done with it."""
            found = group()
            last_delivered = stream_id(found["last-delivered-id"]) if found else (0, 0)
            pending = client.xpending_range(
                keys.commands, keys.command_group, min=entry_id, max=entry_id, count=1
            )
            return last_delivered >= stream_id(entry_id) and not pending

        wait_until(consumed, 15, "the new leader to read and acknowledge the expired command")
        assert later.get("/jobs/greet").json()["paused"] is False
        assert outcome().status == "expired", f"the expired command was taken: {outcome()}"
        assert not client.exists(keys.command_reply(command.id)), "nobody answered it"


def test_a_command_taken_by_a_leader_that_died_is_applied_by_the_next(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )
    keys = Keys(prefix)

    def reading_commands() -> bool:  # the leader's consumer group exists once it reads them
        return bool(client.exists(keys.commands) and client.xinfo_groups(keys.commands))

    with leading_app(settings) as http:
        wait_for_leader(http)
        wait_until(lambda: http.get("/jobs/greet").status_code == 200, 10, "jobs synced")
        wait_until(reading_commands, 10, "the leader reading commands")
    now = datetime.now(UTC)
    command = Command(
        id=uuid.uuid4().hex,
        op="pause",
        job_id="greet",
        created_at=now,
        deadline=now + timedelta(seconds=30),
    )
    # A leader read it and began applying it, then died before answering.
    client.xadd(keys.commands, {"command": command.model_dump_json()})
    client.xreadgroup(keys.command_group, "dead:1", {keys.commands: ">"}, count=1)
    client.set(
        keys.command_outcome(command.id),
        Outcome(status="applying", applied_by="dead:1").model_dump_json(),
    )

    with leading_app(settings) as http:
        wait_for_leader(http)

        def applied() -> Outcome | None:
            raw = client.get(keys.command_outcome(command.id))
            outcome = Outcome.model_validate_json(raw) if raw else None
            return outcome if outcome and outcome.status == "done" else None

        outcome = wait_until(applied, 15, "the next leader to apply the stranded command")
        assert outcome is not None
        assert outcome.code == 200 and outcome.applied_by != "dead:1"
        assert http.get("/jobs/greet").json()["paused"] is True
        assert client.xpending(keys.commands, keys.command_group)["pending"] == 0


def test_changes_survive_a_new_leader(
    redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )
    body = {"trigger": {"type": "interval", "minutes": 7}}
    with leading_app(settings) as http:
        wait_for_leader(http)
        wait_until(lambda: http.get("/jobs/greet").status_code == 200, 10, "jobs synced")
        assert http.patch("/jobs/greet", json=body, headers=AUTH).status_code == 200
        http.post("/jobs/greet/pause", headers=AUTH)
    with leading_app(settings) as http:
        wait_for_leader(http)
        job = http.get("/jobs/greet").json()
        assert (job["trigger"], job["paused"]) == ("interval[0:07:00]", True)


def test_patch_sets_catch_up_and_timeout(http: TestClient) -> None:
    changed = http.patch(
        "/jobs/greet", json={"catch_up": "skip", "timeout": 30, "max_instances": 2}, headers=AUTH
    )
    assert changed.status_code == 200, changed.text
    job = changed.json()
    assert (job["catch_up"], job["timeout"], job["max_instances"]) == ("skip", 30, 2)
    assert "coalesce" not in job and "overlap" not in job, "one spelling per option"
    cleared = http.patch("/jobs/greet", json={"timeout": None, "catch_up": "all"}, headers=AUTH)
    assert (cleared.json()["catch_up"], cleared.json()["timeout"]) == ("all", None)


def tick() -> None: ...


@pytest.mark.parametrize(
    ("op", "payload"),
    [
        ("pause", None),
        ("run", None),
        ("update", {"name": "renamed"}),
        ("delete", None),
        ("create", {"id": "new", "task": "tick", "trigger": {"type": "interval", "seconds": 5}}),
    ],
)
async def test_a_command_applied_as_the_term_ends_is_left_to_the_next_leader(
    raw_client: redis.Redis, prefix: str, op: str, payload: dict[str, Any] | None
) -> None:
    """A term can end while a command is applied in its thread: the leader fences itself and
    shuts its scheduler down, and the command then looks the job up (or adds it). It must stay
    pending for the next leader, not be answered as if this leader had seen the store."""
    keys = Keys(prefix)
    registry = Registry()
    registry.job("interval", id="tick", seconds=60)(tick)
    term = LeaderTerm(int(raw_client.incr(keys.epoch)), float("inf"), time.monotonic)
    scheduler = paused_leader(raw_client, keys, term)
    scheduler.add_job(tick, "interval", seconds=60, id="made-by-api")
    stored = raw_client.hgetall(keys.jobs)
    control = Control(scheduler, registry, JobRetention(raw_client, keys, 60.0))

    term.end()  # as the leader fences itself
    scheduler.shutdown(wait=False)
    at = datetime.now(UTC)
    change = Command(
        id=uuid.uuid4().hex,
        op=op,
        job_id=str((payload or {}).get("id", "made-by-api")),
        payload=payload or {},
        created_at=at,
        deadline=at + timedelta(minutes=1),
    )
    with pytest.raises(NotLeaderError):
        outcome = await asyncio.to_thread(control.apply, change)
        pytest.fail(f"{op} after the term ended was answered: {outcome}")
    assert raw_client.hgetall(keys.jobs) == stored, "the job store is as it was"


def test_a_delete_applied_but_not_answered_is_answered_as_applied(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The leader applies a DELETE, then its answer is lost (the connection drops, or the
    leader changes) and the command is applied again: the job is gone because of this very
    command, so the answer is still 204, not 404."""
    settings = make_settings(
        redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS
    )
    keys = Keys(prefix)
    answer = CommandConsumer._answer
    lost: list[str] = []

    async def answer_lost_once(
        self: CommandConsumer, command: Command, outcome: Outcome, entry_id: str
    ) -> None:
        if command.op == "delete" and not lost:
            lost.append(command.id)
            raise redis.ConnectionError("the connection dropped before the answer")
        await answer(self, command, outcome, entry_id)

    monkeypatch.setattr(CommandConsumer, "_answer", answer_lost_once)
    body = {"id": "doomed", "task": "greet", "trigger": {"type": "interval", "hours": 1}}
    with leading_app(settings) as http:
        wait_for_leader(http)
        assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
        deleted = http.delete("/jobs/doomed", headers=AUTH)
        assert lost, "the answer was not lost: the test did not run its fault"
        outcome = Outcome.model_validate_json(client.get(keys.command_outcome(lost[0])) or "{}")
        assert http.get("/jobs/doomed", headers=AUTH).status_code == 404, "not deleted"
    assert (outcome.status, outcome.code) == ("done", 204), outcome
    assert deleted.status_code == 204, deleted.text


def test_run_now_of_a_job_whose_task_this_leader_does_not_define_is_refused(
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
    make_settings: Callable[..., Settings],
    processes: Processes,
) -> None:
    """A job created through the API for a task that the current leader's code does not define
    (a rollback): "run now" must not answer that the run started; the run would be recorded
    `skipped: unknown_task`. It is refused, naming the task."""
    body = {"id": "api-greet", "task": "greet", "trigger": {"type": "interval", "hours": 1}}
    with leading_app(
        make_settings(redis_server, scheduler_mode="embedded", api_token=TOKEN, jobs_modules=JOBS)
    ) as http:
        wait_for_leader(http)
        assert http.post("/jobs", json=body, headers=AUTH).status_code == 201
    processes.scheduler("without-greet", REDIS_URL=redis_server.url)  # probe_jobs only
    with TestClient(create_app(make_settings(redis_server, api_token=TOKEN))) as http:
        wait_for_leader(http)
        ran = http.post("/jobs/api-greet/run", headers=AUTH)
    assert ran.status_code == 422, ran.text
    assert "greet" in ran.text and "JOBS_MODULES" in ran.text, ran.text
    ledger = client.xrange(Keys(prefix).ledger("api-greet"))
    assert not ledger, f"a run was decided anyway: {ledger}"
