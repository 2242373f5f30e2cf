"""deploy/swarm/stack.yml with `docker stack deploy` on a single-node Docker Swarm: the API
answers through the published port, scales to three replicas that all receive requests, and
when the leading scheduler's task container is killed a standby takes over, Swarm starts a new
task in its place and every heartbeat fire time is still decided exactly once.

The stack file is docker-compose.yml in the form stack deploy takes (which refuses the
Compose file itself, see the stack file's header); the first test checks that, under the same
variables, both deploy the same images, commands, settings and mounts.
"""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cluster import host_of
from tests.support.compose_stack import stack_env
from tests.support.ledger_checks import CUT_OFF, duplicates, gaps, spread
from tests.support.processes import REPO, wait_until
from tests.support.redis_server import free_port
from tests.support.swarm import (
    STACK_FILE,
    SwarmStack,
    deployed_stack,
    docker,
    single_node_swarm,
)
from tickonce._firing.record import fire_ms
from tickonce._storage.keys import Keys

pytestmark = pytest.mark.containers

TTL = 2.0
API_REPLICAS = 3
SCHEDULERS = 2
HEARTBEAT_BEATS = Keys("tickonce:").example("heartbeat")


@pytest.fixture
def swarm_stack(tmp_path: Path) -> Iterator[SwarmStack]:
    """The stack with a 2 s lease, a fresh Redis password and a free port, on a swarm."""
    with single_node_swarm():
        env = stack_env(free_port(), LEASE_TTL_SECONDS=str(TTL), SCHEDULER_REPLICAS=str(SCHEDULERS))
        with deployed_stack(tmp_path, env) as stack:
            yield stack


# -- the stack file and docker-compose.yml agree ----------------------------------------------


def example_variables() -> list[str]:
    """Every variable .env.example documents."""
    lines = (REPO / ".env.example").read_text().splitlines()
    return [line.split("=", 1)[0] for line in lines if line and not line.startswith("#")]


def every_variable_set() -> dict[str, str]:
    """A value of its own for each documented variable, of the type its use needs."""
    values = {"REDIS_PASSWORD": "pw-0123456789", "API_PORT": "18001"}
    for n, name in enumerate(example_variables()):
        if name in values:
            continue
        if name.endswith("_REPLICAS"):
            values[name] = str(3 + n)
        elif name.endswith("_STOP_GRACE_PERIOD"):
            values[name] = f"{17 + n}s"
        elif name.endswith("_IMAGE"):
            values[name] = f"example/{name.lower().replace('_', '-')}:{n}"
        else:
            values[name] = f"{name.lower()}-{n}"
    return values


def resolved(tmp_path: Path, variables: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """docker-compose.yml as `docker compose config` resolves it and the stack file as
    `docker stack config` does, both with exactly ``variables`` set."""
    clean = {k: v for k, v in os.environ.items() if k not in set(example_variables())}
    env_file = tmp_path / "variables.env"
    env_file.write_text("".join(f"{key}={value}\n" for key, value in variables.items()))
    compose = docker(
        "compose",
        "--env-file",
        str(env_file),
        "-f",
        "docker-compose.yml",
        "config",
        "--format",
        "json",
        env=clean,
    )
    stack = docker("stack", "config", "--compose-file", str(STACK_FILE), env=clean | variables)
    return json.loads(compose.stdout), yaml.safe_load(stack.stdout)


def essence(service: dict[str, Any]) -> dict[str, Any]:
    """What a service runs and with what, in a form both tools' output reduce to."""
    volumes = service.get("volumes") or []
    tmpfs = [*(service.get("tmpfs") or []), *(v["target"] for v in volumes if v["type"] == "tmpfs")]
    files = [
        *((v["source"], v["target"]) for v in volumes if v["type"] == "bind"),
        *(("config " + c["source"], c["target"]) for c in service.get("configs") or []),
    ]
    return {
        "image": service.get("image"),
        "command": service.get("command"),
        "environment": service.get("environment") or {},
        "healthcheck": service.get("healthcheck"),
        "read_only": bool(service.get("read_only")),
        "stop_grace_period": service.get("stop_grace_period"),
        "replicas": (service.get("deploy") or {}).get("replicas", 1),
        "ports": sorted((p["target"], int(p["published"])) for p in service.get("ports") or []),
        "tmpfs": sorted(tmpfs),
        "volumes": sorted((v["source"], v["target"]) for v in volumes if v["type"] == "volume"),
        "files": sorted(target for _, target in files),
    }


@pytest.mark.parametrize("which", ["defaults", "every variable set"])
def test_the_stack_file_deploys_what_docker_compose_yml_does(which: str, tmp_path: Path) -> None:
    variables = {"REDIS_PASSWORD": "pw-0123456789"} if which == "defaults" else every_variable_set()
    compose, stack = resolved(tmp_path, variables)
    assert set(stack["services"]) == set(compose["services"])
    for name, service in compose["services"].items():
        assert essence(stack["services"][name]) == essence(service), f"service {name} differs"
    assert set(stack["volumes"]) == set(compose["volumes"])
    # HAProxy's configuration: the same file, bind-mounted by Compose, a Swarm config here.
    [config] = stack["configs"].values()
    assert Path(config["file"]) == REPO / "deploy" / "haproxy.cfg"
    # A swarm's service names resolve to every task (HAProxy balances over them itself), and
    # the port is published on the node: nothing relies on IPVS virtual IPs.
    for name, service in stack["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
    assert [port["mode"] for port in stack["services"]["lb"]["ports"]] == ["host"]


# -- the stack on a swarm ----------------------------------------------------------------------


def ms(text: str) -> int:
    return fire_ms(datetime.fromisoformat(text))


@dataclass
class Heartbeats:
    """The heartbeat's fire times (ms) in a window: the ledger's and the job's own record."""

    times: list[int]  # every fire time a ledger entry accounts for
    succeeded: dict[int, str]  # fire time -> runner, of the ledger entries that succeeded
    cut_off: set[int]  # fire times whose runner was lost mid-run (recorded failed)
    beats: list[tuple[int, str]]  # (fire time, runner) of each beat the job wrote itself
    newest: int  # the newest fire time in the ledger, settled or not


def heartbeats(stack: SwarmStack, since: float) -> Heartbeats:
    """Heartbeats scheduled from ``since`` on that have settled. The stack keeps running, so
    the newest two seconds (runs possibly between writing their beat and their ledger entry)
    are left out."""
    entries: list[dict[str, Any]] = stack.get("/jobs/heartbeat/runs", limit=1000)
    lines = stack.redis("LRANGE", HEARTBEAT_BEATS, "0", "-1").splitlines()
    written = [json.loads(line) for line in lines if line.strip()]
    newest = max((ms(entry["scheduled_at"]) for entry in entries), default=0)
    start, settled = int(since * 1000), newest - 2000

    def inside(at: int) -> bool:
        return start <= at <= settled

    def entry_times(entry: dict[str, Any]) -> list[int]:
        first = ms(entry["scheduled_at"])
        last = ms(entry["until"]) if entry.get("until") else first
        return spread(first, last, int(entry.get("count") or 1))

    return Heartbeats(
        times=sorted(t for e in entries for t in entry_times(e) if inside(t)),
        succeeded={
            ms(e["scheduled_at"]): e["runner"]
            for e in entries
            if e["status"] == "succeeded" and inside(ms(e["scheduled_at"]))
        },
        cut_off={
            ms(e["scheduled_at"])
            for e in entries
            if e["reason"] in CUT_OFF and inside(ms(e["scheduled_at"]))
        },
        beats=sorted(
            (ms(b["scheduled_at"]), b["runner"]) for b in written if inside(ms(b["scheduled_at"]))
        ),
        newest=newest,
    )


def other_leader(stack: SwarmStack, than: str) -> str | None:
    """The leader, once it is a process in another container than ``than``."""
    leader: str | None = stack.get("/scheduler")["leader"]
    return leader if leader and host_of(leader) != host_of(than) else None


@pytest.mark.chaos
@pytest.mark.timeout(360)  # a first build of the image included; a warm run takes ~1.5 min
def test_scale_api_and_kill_the_leading_scheduler_task_each_fire_once(
    swarm_stack: SwarmStack,
) -> None:
    stack = swarm_stack
    wait_until(stack.ready, 120, "the API ready through the published port", interval=0.5)
    wait_until(
        lambda: stack.settled(SCHEDULERS), 60, "a leader and a standby: the running schedulers"
    )
    since = time.time()

    stack.scale("api", API_REPLICAS)
    wait_until(
        lambda: stack.healthy("api", API_REPLICAS),
        90,
        f"{API_REPLICAS} healthy api tasks",
        interval=0.5,
    )
    for container in stack.containers("api"):
        wait_until(
            functools.partial(
                stack.served_by, container["Id"], since=since, attempts=4 * API_REPLICAS
            ),
            30,
            f"requests through the published port reaching api task {container['Name']}",
            interval=0.5,
        )
    assert "heartbeat" in {job["id"] for job in stack.get("/jobs")}

    leader: str = stack.get("/scheduler")["leader"]
    schedulers = stack.containers("scheduler")
    [victim] = [c for c in schedulers if c["Config"]["Hostname"] == host_of(leader)]
    docker("kill", victim["Id"])
    successor = wait_until(
        lambda: other_leader(stack, leader), 3 * TTL + 10, "a leader in another container"
    )
    assert successor is not None
    before = {c["Id"] for c in schedulers}
    wait_until(
        lambda: (
            stack.healthy("scheduler", SCHEDULERS)
            and not {c["Id"] for c in stack.containers("scheduler")} <= before
        ),
        90,
        "Swarm running a healthy new scheduler task in place of the killed one",
        interval=0.5,
    )
    wait_until(lambda: stack.settled(SCHEDULERS), 30, "the new task standing by")
    settled = time.time()
    wait_until(
        lambda: heartbeats(stack, since).newest >= (settled + 5) * 1000,
        30,
        "heartbeats for 5 s after the new task joined",
        interval=0.5,
    )

    found = heartbeats(stack, since)
    beat_times = [at for at, _ in found.beats]
    assert len(found.succeeded) >= 10, f"only {len(found.succeeded)} heartbeats succeeded"
    assert not duplicates(found.times), f"times with two ledger entries: {duplicates(found.times)}"
    assert not gaps(found.times), f"fire times without a ledger entry: {gaps(found.times)}"
    assert not duplicates(beat_times), f"times the job ran twice: {duplicates(beat_times)}"
    assert set(found.succeeded) <= set(beat_times), (
        f"recorded as succeeded but never ran: {sorted(set(found.succeeded) - set(beat_times))}"
    )
    unrecorded = set(beat_times) - set(found.succeeded) - found.cut_off
    assert not unrecorded, f"ran but not recorded as succeeded: {sorted(unrecorded)}"
    for at, runner in found.beats:
        if at in found.succeeded:
            assert host_of(runner) == host_of(found.succeeded[at]), f"two runners for {at}"
    runner_hosts = {host_of(runner) for runner in found.succeeded.values()}
    assert {host_of(leader), host_of(successor)} <= runner_hosts, (
        f"heartbeats by both the killed leader and its successor: ran in {runner_hosts}"
    )
