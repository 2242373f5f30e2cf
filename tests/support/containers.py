"""Docker for tests: image names from the environment, and Redis from a real container.

Image names come from PYTHON_IMAGE, REDIS_IMAGE and LB_IMAGE, whose defaults are the public
images; machines without a registry export the stand-ins built by deploy/airgap/.
"""

from __future__ import annotations

import os
import secrets
import subprocess

import redis

# Ryuk (testcontainers' reaper) is one more image to pull; every fixture here removes its own
# containers instead, also when a test fails. Connect over loopback.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_HOST_OVERRIDE", "localhost")

from testcontainers.community.redis import RedisContainer  # after the environment above

PYTHON_IMAGE = os.environ.get("PYTHON_IMAGE", "python:3.12-slim")
REDIS_IMAGE = os.environ.get("REDIS_IMAGE", "redis:7.4-alpine")
LB_IMAGE = os.environ.get("LB_IMAGE", "haproxy:3.0-alpine")

NO_DOCKER = (
    "Docker is not available ({reason}). Container tests need a running engine: start it "
    "(`bash .ci/run` provisions one), or deselect them with `-m 'not containers'`."
)


def docker_problem() -> str | None:
    """Why Docker cannot be used, or None when `docker info` answers."""
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return None if result.returncode == 0 else (result.stderr.strip() or "docker info failed")


class ContainerRedis:
    """A password-protected Redis in a container, with the same face as a local RedisServer."""

    def __init__(self) -> None:
        self.password = secrets.token_hex(12)
        self.container = RedisContainer(REDIS_IMAGE, password=self.password)

    def start(self) -> ContainerRedis:
        try:
            self.container.start()
        except Exception:
            self.stop()
            raise
        return self

    @property
    def port(self) -> int:
        return int(self.container.get_exposed_port(6379))

    @property
    def url(self) -> str:
        host = self.container.get_container_host_ip()
        return f"redis://:{self.password}@{host}:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        self.container.stop()  # removes the container and its volumes
