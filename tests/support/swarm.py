"""Docker Swarm for the e2e tests: a single-node swarm on loopback, and deploy/swarm/stack.yml
deployed on it as a stack of its own.

The swarm is initialised only when the engine is in none, and then left again afterwards; an
engine already managing a swarm is used as it is. A stack's image is built first (stack deploy
never builds) under a tag of its own, and everything the stack made is always removed: its
services, their containers, its network and config, the Redis volume (which `docker stack rm`
leaves behind) and the image tag.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import host_of
from tests.support.containers import docker_problem
from tests.support.processes import REPO
from tests.support.redis_server import free_port

STACK_FILE = REPO / "deploy" / "swarm" / "stack.yml"
STACK_LABEL = "com.docker.stack.namespace"
SERVICE_LABEL = "com.docker.swarm.service.name"
SERVICES = ("redis", "api", "lb", "scheduler")
GATEWAY_BRIDGE = "docker_gwbridge"  # the bridge Swarm creates for its containers' egress


def docker(
    *args: str, timeout: float = 60, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """A docker command from the repository root; with ``check``, a failure is an
    AssertionError carrying the command's own error output."""
    result = subprocess.run(
        ["docker", *args],
        cwd=REPO,
        env=None if env is None else dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout)[-2000:]}"
        )
    return result


def swarm_state() -> tuple[str, bool]:
    """This engine's swarm state (inactive, pending, active, error, locked) and whether it is a
    manager (only a manager deploys stacks)."""
    found = docker("info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}")
    state, manager = found.stdout.split()
    return state, manager == "true"


def network_exists(name: str) -> bool:
    return docker("network", "inspect", name, check=False).returncode == 0


@contextmanager
def single_node_swarm() -> Iterator[None]:
    """A swarm this engine manages: initialised on loopback when it is in none (and left again
    afterwards, with the gateway bridge it created), else the one it manages. Fails, never
    skips, when the engine cannot give one."""
    if (problem := docker_problem()) is not None:
        pytest.fail(f"Docker is not available ({problem}); the swarm e2e test needs it.")
    state, manager = swarm_state()
    if state == "active":
        if not manager:
            pytest.fail("this engine is a worker of a swarm; `docker stack deploy` needs a manager")
        yield
        return
    if state != "inactive":
        pytest.fail(f"this engine's swarm is {state}: neither usable nor free to initialise")
    had_gateway_bridge = network_exists(GATEWAY_BRIDGE)
    port = free_port()
    init = docker(
        "swarm",
        "init",
        "--advertise-addr",
        f"127.0.0.1:{port}",
        "--listen-addr",
        f"127.0.0.1:{port}",
        check=False,
    )
    if init.returncode != 0:
        pytest.fail(f"docker swarm init failed: {init.stderr.strip()}")
    try:
        yield
    finally:
        docker("swarm", "leave", "--force")
        if not had_gateway_bridge:
            docker("network", "rm", GATEWAY_BRIDGE, check=False)
            assert not network_exists(GATEWAY_BRIDGE), f"{GATEWAY_BRIDGE} left behind"


@dataclass
class SwarmStack:
    """A deployed stack of deploy/swarm/stack.yml, reached through its published port."""

    name: str
    env: dict[str, str]  # the variables it was deployed with
    base_url: str

    def service(self, service: str) -> str:
        return f"{self.name}_{service}"

    def get(self, path: str, **params: Any) -> Any:
        response = httpx.get(f"{self.base_url}{path}", params=params, timeout=10)
        response.raise_for_status()
        return response.json()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.base_url}/readyz", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def containers(self, service: str) -> list[dict[str, Any]]:
        """`docker inspect` of the running containers of one of the stack's services."""
        ids = docker(
            "ps", "-q", "--filter", f"label={SERVICE_LABEL}={self.service(service)}"
        ).stdout.split()
        if not ids:
            return []
        inspected = docker("inspect", *ids, check=False)  # one may be gone meanwhile
        found: list[dict[str, Any]] = json.loads(inspected.stdout or "[]")
        return [c for c in found if c["State"]["Running"]]

    def healthy(self, service: str, replicas: int) -> bool:
        """Exactly ``replicas`` containers of ``service`` run, every one healthy."""
        running = self.containers(service)
        return len(running) == replicas and all(
            c["State"].get("Health", {}).get("Status") == "healthy" for c in running
        )

    def hostnames(self, service: str) -> set[str]:
        """Hostnames of its running containers: the host part of the members' ids."""
        return {c["Config"]["Hostname"] for c in self.containers(service)}

    def scale(self, service: str, replicas: int) -> None:
        """Ask Swarm for ``replicas`` tasks (without waiting: callers wait, bounded)."""
        docker("service", "scale", "--detach", f"{self.service(service)}={replicas}")

    def redis(self, *command: str) -> str:
        """A redis-cli command inside the Redis task's container (Redis is not published)."""
        [container] = self.containers("redis")
        password = self.env["REDIS_PASSWORD"]
        found = docker(
            "exec", container["Id"], "redis-cli", "--no-auth-warning", "-a", password, *command
        )
        return found.stdout

    def settled(self, schedulers: int) -> bool:
        """One leader and standbys, and the live members are exactly the running schedulers."""
        try:
            members = self.get("/scheduler")["members"]
        except httpx.HTTPError:
            return False
        roles = sorted(member["role"] for member in members)
        hosts = {host_of(member["id"]) for member in members}
        return (
            roles == ["leader"] + ["standby"] * (schedulers - 1)
            and len(hosts) == schedulers
            and hosts == self.hostnames("scheduler")
        )

    def served_by(self, container_id: str, *, since: float, attempts: int) -> bool:
        """Whether requests through the published port reach this api container (its log
        shows a request marked for this check)."""
        marker = uuid.uuid4().hex
        try:
            with httpx.Client(base_url=self.base_url, timeout=10) as client:
                for _ in range(attempts):
                    client.get("/healthz", params={"probe": marker}).raise_for_status()
        except httpx.HTTPError:
            return False
        logs = docker("logs", "--since", f"{since:.3f}", container_id, check=False)
        return marker in logs.stdout + logs.stderr

    def leftovers(self) -> dict[str, list[str]]:
        """What of this stack still exists: services, containers, networks, configs."""
        label = f"label={STACK_LABEL}={self.name}"
        listings = {
            "services": ("service", "ls", "-q", "--filter", label),
            "containers": ("ps", "-aq", "--filter", label),
            "networks": ("network", "ls", "-q", "--filter", label),
            "configs": ("config", "ls", "-q", "--filter", label),
        }
        found = {kind: docker(*argv).stdout.split() for kind, argv in listings.items()}
        return {kind: ids for kind, ids in found.items() if ids}

    def print_logs(self) -> None:
        """The services' last log lines (shown by pytest when a test fails)."""
        for service in SERVICES:
            logs = docker("service", "logs", "--tail", "40", self.service(service), check=False)
            print(
                f"---- {self.service(service)} (last lines) ----",
                logs.stdout,
                logs.stderr,
                sep="\n",
            )

    def remove(self) -> None:
        """`docker stack rm`, then wait (bounded) until everything it made is gone, and remove
        the Redis volume it leaves; what remains after the wait is removed by force and
        reported."""
        docker("stack", "rm", self.name, check=False)
        deadline = time.monotonic() + 90
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(1)
        for service in left.get("services", []):
            docker("service", "rm", service, check=False)
        for container in left.get("containers", []):
            docker("rm", "--force", "--volumes", container, check=False)
        for network in left.get("networks", []):
            docker("network", "rm", network, check=False)
        for config in left.get("configs", []):
            docker("config", "rm", config, check=False)
        volumes = docker(
            "volume", "ls", "-q", "--filter", f"label={STACK_LABEL}={self.name}"
        ).stdout.split()
        for volume in volumes:
            docker("volume", "rm", volume, check=False)
        remaining = docker(
            "volume", "ls", "-q", "--filter", f"label={STACK_LABEL}={self.name}"
        ).stdout.split()
        assert not left and not remaining, (
            f"stack {self.name} not gone after 90 s: {left}, volumes {remaining}"
        )


def build_image(workdir: Path, env: Mapping[str, str]) -> None:
    """The image as `docker compose build` makes it from docker-compose.yml, tagged
    ``env["TICKONCE_IMAGE"]`` (with ``env`` as the .env: base image, pip settings)."""
    env_file = workdir / "build.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    docker(
        "compose",
        "--env-file",
        str(env_file),
        "-f",
        "docker-compose.yml",
        "build",
        "api",
        timeout=600,
    )


@contextmanager
def deployed_stack(workdir: Path, env: Mapping[str, str]) -> Iterator[SwarmStack]:
    """deploy/swarm/stack.yml deployed under a name of its own with ``env`` (its variables:
    stack deploy reads no .env file), on an image built for it; always removed afterwards,
    logs shown first."""
    name = f"tickonce-swarm-{uuid.uuid4().hex[:8]}"
    variables = {**env, "TICKONCE_IMAGE": f"tickonce:{name}"}
    build_image(workdir, variables)
    stack = SwarmStack(name, variables, f"http://127.0.0.1:{env['API_PORT']}")
    try:
        docker(
            "stack",
            "deploy",
            "--resolve-image",
            "never",  # a local image: no registry to ask for its digest
            "--compose-file",
            str(STACK_FILE),
            name,
            env={**os.environ, **variables},
            timeout=120,
        )
        yield stack
    finally:
        try:
            stack.print_logs()
        finally:
            try:
                stack.remove()
            finally:
                docker("image", "rm", variables["TICKONCE_IMAGE"], check=False)
