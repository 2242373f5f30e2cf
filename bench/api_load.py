"""API throughput and latency: GET /jobs through the compose stack's load balancer, by wrk."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from tests.support.processes import REPO, answers, wait_until
from tests.support.redis_server import free_port

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


@dataclass
class ApiLoad:
    replicas: int
    workers: int
    requests_per_second: float
    p99_ms: float
    errors: int


def _wrk(url: str, seconds: int) -> tuple[float, float, int]:
    out = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, float(value) * _UNITS[unit], int(errors.group(1)) if errors else 0


def measure_api(workdir: Path, configs: list[tuple[int, int]], seconds: int = 10) -> list[ApiLoad]:
    """Each (replicas, workers) config on the real docker-compose.yml, schedulers running."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is needed: apt-get install wrk")
    port = free_port()
    env_file = workdir / "bench.env"
    base = [
        f"API_PORT={port}",
        f"REDIS_PASSWORD={secrets.token_hex(12)}",
        "COMPOSE_PROJECT_NAME=tickonce-bench",
        "LOG_LEVEL=WARNING",
    ]
    command = ["docker", "compose", "--env-file", str(env_file)]
    results = []
    try:
        for replicas, workers in configs:
            env_file.write_text("\n".join([*base, f"WEB_CONCURRENCY={workers}", ""]))
            subprocess.run(
                [*command, "up", "-d", "--build", "--wait", "--scale", f"api={replicas}"],
                cwd=REPO,
                check=True,
                capture_output=True,
                timeout=600,
            )
            url = f"http://127.0.0.1:{port}/jobs"
            wait_until(partial(answers, url), 60, "the stack")
            time.sleep(2)
            _wrk(url, 3)  # warm up every worker
            rps, p99, errors = _wrk(url, seconds)
            results.append(ApiLoad(replicas, workers, rps, p99, errors))
    finally:
        subprocess.run(
            [*command, "down", "-v", "-t", "5"], cwd=REPO, capture_output=True, timeout=300
        )
    return results
