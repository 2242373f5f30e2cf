"""Odd values of the storage format record (``{KEY_PREFIX}format``) are refused by name: a
scheduler exits with one line (no traceback, no running on), and the api answers 503 naming the
format on /readyz and /healthz alike. Bytes that are not text and a key of another type are
among them: reading them once failed the read itself (a UnicodeDecodeError traceback, /readyz
500; WRONGTYPE taken for Redis trouble, retried forever)."""

from __future__ import annotations

import httpx
import pytest
import redis

from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._storage.keys import Keys
from tickonce._storage.layout import STORAGE_FORMAT

pytestmark = pytest.mark.processes

ODD: dict[str, bytes | None] = {
    "garbage": b"garbage",
    "empty": b"",
    "zero": b"0",
    "trailing-space": b"1 ",
    "newer": str(STORAGE_FORMAT + 1).encode(),
    "not-utf8": b"\xff\xfe",
    "a-hash": None,  # not a string at all
}


@pytest.mark.parametrize("label", list(ODD))
def test_an_odd_format_is_refused_clearly(
    redis_server: RedisServer,
    raw_client: redis.Redis,
    processes: Processes,
    prefix: str,
    label: str,
) -> None:
    processes.env.update(REDIS_URL=redis_server.url)
    key = Keys(prefix).storage_format
    value = ODD[label]
    if value is None:
        raw_client.hset(key, "format", "1")
    else:
        raw_client.set(key, value)
    port = free_port()
    processes.gunicorn("api", port, 1)
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: answering(f"{url}/healthz"), 30, "the api")
    ready = httpx.get(f"{url}/readyz", timeout=10)
    healthy = httpx.get(f"{url}/healthz", timeout=10)
    scheduler = processes.scheduler("scheduler")
    try:
        code: int | None = scheduler.wait(timeout=20)
    except Exception:
        code = None
    log, api_log = processes.log("scheduler"), processes.log("api")

    problems = []
    for path, answer in (("/readyz", ready), ("/healthz", healthy)):
        if answer.status_code != 503 or "storage format" not in answer.text:
            problems.append(f"{path} answered {answer.status_code}: {answer.text[:300]}")
    if "Traceback" in api_log:
        problems.append(f"api traceback: {api_log[api_log.index('Traceback') :][-600:]}")
    if code is None:
        problems.append(f"the scheduler kept running with format {ODD[label]!r}: {log[-600:]}")
    elif code == 0:
        problems.append(f"the scheduler exited 0: {log[-600:]}")
    if "Traceback" in log:
        problems.append(f"scheduler traceback: {log[log.index('Traceback') :][-600:]}")
    elif "storage format" not in log:
        problems.append(f"the scheduler never named the format: {log[-600:]}")
    if ODD[label] is not None and raw_client.get(key) != ODD[label]:
        problems.append("the recorded format was changed")
    assert not problems, "\n".join(problems)


def answering(url: str) -> bool:
    """Whether the server answers at all (a refusing replica answers 503)."""
    try:
        httpx.get(url, timeout=3)
    except httpx.HTTPError:
        return False
    return True
