"""Secrets and access: Redis URLs redacted in every answer, read-only and read-write tokens."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings

TOKEN = "test-token-0123456789abcdef"
READ_TOKEN = "read-token-0123456789abcdef"
WRITE = {"Authorization": f"Bearer {TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}
WRONG = {"Authorization": "Bearer wrong-token-0123456789abcdef"}
JOBS = ["tests.support.control_jobs"]
READS = ["/jobs", "/jobs/greet", "/jobs/greet/runs", "/scheduler", "/metrics"]
READ_ONLY = "this token may only read; changes need API_TOKEN"
PASSWORD = "s3cret-Pa55"


# --- Redis URLs never reach a caller with their password -----------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def unreachable_urls(tmp_path: Path) -> list[tuple[str, str]]:
    """Redis URLs that cannot connect, each with the part of it a message may show."""
    port = closed_port()
    missing = tmp_path / "no-such-redis.sock"
    return [
        (f"redis://:{PASSWORD}@127.0.0.1:{port}/0", f"127.0.0.1:{port}"),
        (f"redis://admin:{PASSWORD}@127.0.0.1:{port}/0", f"127.0.0.1:{port}"),
        (f"redis://127.0.0.1:{port}/0?password={PASSWORD}", f"127.0.0.1:{port}"),
        (f"unix://:{PASSWORD}@{missing}?db=0", str(missing)),
        (f"unix://admin:{PASSWORD}@{missing}?db=0", str(missing)),
        (f"unix://{missing}?password={PASSWORD}", str(missing)),
    ]


def test_no_503_answer_shows_the_redis_password(tmp_path: Path, prefix: str) -> None:
    for url, location in unreachable_urls(tmp_path):
        settings = Settings(
            redis_url=url,
            key_prefix=prefix,
            jobs_modules=JOBS,
            api_token=TOKEN,
            redis_timeout_seconds=0.5,
        )
        with TestClient(create_app(settings)) as http:
            answers = [http.get(path) for path in ["/readyz", *READS]]
            answers.append(http.post("/jobs/greet/pause", headers=WRITE))
            for answer in answers:
                assert answer.status_code == 503, (url, answer.request.url, answer.text)
                detail = answer.json()["detail"]
                assert PASSWORD not in answer.text, (url, answer.text)
                assert f"admin:{PASSWORD}" not in answer.text
                assert "admin" not in answer.text, "the username is part of the secret"
                assert detail.startswith("Redis at "), detail
                assert location in detail, "where Redis was expected stays readable"
            assert http.get("/healthz").status_code == 200


# --- read-only and read-write tokens --------------------------------------------------------


def wait_for_leader(http: TestClient, headers: dict[str, str]) -> None:
    wait_until(
        lambda: http.get("/scheduler", headers=headers).json()["leader"] is not None,
        15,
        "a leader",
    )
    wait_until(
        lambda: http.get("/jobs/greet", headers=headers).status_code == 200, 10, "jobs synced"
    )


@pytest.fixture
def http(redis_server: RedisServer, make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    """Both tokens set: reads need one of them, changes need API_TOKEN."""
    settings = make_settings(
        redis_server,
        scheduler_mode="embedded",
        api_token=TOKEN,
        api_read_token=READ_TOKEN,
        jobs_modules=JOBS,
    )
    with TestClient(create_app(settings)) as client:
        wait_for_leader(client, READ)
        yield client


CHANGES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/jobs/greet/pause", None),
    ("POST", "/jobs/greet/resume", None),
    ("POST", "/jobs/greet/run", None),
    ("PATCH", "/jobs/greet", {"max_instances": 2}),
    ("POST", "/jobs", {"id": "new", "task": "greet", "trigger": {"type": "interval", "hours": 1}}),
    ("DELETE", "/jobs/greet", None),
]


def test_the_read_token_reads(http: TestClient) -> None:
    for path in READS:
        answer = http.get(path, headers=READ)
        assert answer.status_code == 200, (path, answer.text)
    assert "greet" in [job["id"] for job in http.get("/jobs", headers=READ).json()]


def test_the_read_token_cannot_change(http: TestClient) -> None:
    for method, path, body in CHANGES:
        answer = http.request(method, path, headers=READ, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert answer.json() == {"detail": READ_ONLY}
    job = http.get("/jobs/greet", headers=READ).json()
    assert (job["paused"], job["max_instances"]) == (False, 1), "nothing was changed"
    assert http.get("/jobs/new", headers=READ).status_code == 404
    assert http.get("/jobs/greet/runs", headers=READ).json() == [], "nothing ran"


def test_the_write_token_reads_and_changes(http: TestClient) -> None:
    for path in READS:
        assert http.get(path, headers=WRITE).status_code == 200, path
    paused = http.post("/jobs/greet/pause", headers=WRITE)
    assert paused.status_code == 200 and paused.json()["paused"] is True
    assert http.get("/jobs/greet", headers=READ).json()["paused"] is True
    changed = http.patch("/jobs/greet", json={"max_instances": 2}, headers=WRITE)
    assert changed.status_code == 200 and changed.json()["max_instances"] == 2


def test_protected_reads_need_a_right_token(http: TestClient) -> None:
    for path in READS:
        missing = http.get(path)
        assert missing.status_code == 401, (path, missing.text)
        assert missing.headers["www-authenticate"] == "Bearer"
        assert "API_READ_TOKEN" in missing.json()["detail"]
        wrong = http.get(path, headers=WRONG)
        assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong token"}, path
    assert http.post("/jobs/greet/pause").status_code == 401
    wrong = http.post("/jobs/greet/pause", headers=WRONG)
    assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong token"}


def test_health_and_the_status_page_stay_open(http: TestClient) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    assert http.get("/readyz").json() == {"status": "ready"}
    page = http.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="token"' in page.text
    assert http.get("/openapi.json").status_code == 200


def secured(spec: dict[str, Any], method: str, path: str) -> bool:
    return bool(spec["paths"][path][method].get("security"))


@pytest.mark.parametrize(
    ("overrides", "reads_secured"),
    [
        ({}, False),
        ({"api_token": TOKEN}, False),
        ({"api_token": TOKEN, "api_read_token": READ_TOKEN}, True),
        ({"api_read_token": READ_TOKEN}, True),
        ({"api_token": TOKEN, "api_read_token_required": True}, True),
    ],
)
def test_the_openapi_spec_marks_reads_secured_exactly_when_they_are(
    redis_server: RedisServer,
    make_settings: Callable[..., Settings],
    overrides: dict[str, Any],
    reads_secured: bool,
) -> None:
    settings = make_settings(redis_server, jobs_modules=JOBS, **overrides)
    with TestClient(create_app(settings)) as http:
        spec = http.get("/openapi.json").json()
        for path in ["/jobs", "/jobs/{job_id}", "/jobs/{job_id}/runs", "/scheduler", "/metrics"]:
            assert secured(spec, "get", path) is reads_secured, path
            answer = http.get(path.replace("{job_id}", "greet"))
            if reads_secured:
                assert answer.status_code == 401, (path, answer.text)
            else:
                assert answer.status_code in (200, 404), (path, answer.text)
        for method, path in [("post", "/jobs/{job_id}/pause"), ("patch", "/jobs/{job_id}")]:
            assert secured(spec, method, path), "changes are always secured"
        for path in ["/healthz", "/readyz"]:
            assert not secured(spec, "get", path), path


def test_the_existing_flag_alone_makes_reads_need_api_token(
    redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    closed = make_settings(
        redis_server, api_token=TOKEN, api_read_token_required=True, jobs_modules=JOBS
    )
    with TestClient(create_app(closed)) as http:
        missing = http.get("/jobs")
        assert missing.status_code == 401
        assert "API_TOKEN" in missing.json()["detail"]
        assert http.get("/jobs", headers=WRITE).status_code == 200
        assert http.get("/jobs", headers=READ).status_code == 403, "no read token configured"

    neither = make_settings(redis_server, api_read_token_required=True, jobs_modules=JOBS)
    with TestClient(create_app(neither)) as http:
        refused = http.get("/jobs", headers=WRITE)
        assert refused.status_code == 403
        assert "API_READ_TOKEN" in refused.json()["detail"]
        assert http.get("/", headers={}).status_code == 200


def test_a_read_token_without_api_token_reads_and_changes_stay_disabled(
    redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(redis_server, api_read_token=READ_TOKEN, jobs_modules=JOBS)
    with TestClient(create_app(settings)) as http:
        assert http.get("/jobs", headers=READ).status_code == 200
        assert http.get("/jobs").status_code == 401
        refused = http.post("/jobs/greet/pause", headers=READ)
        assert refused.status_code == 403
        assert "set API_TOKEN" in refused.json()["detail"]
