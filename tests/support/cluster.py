"""Who leads, and what the probe job ran: what process and chaos tests ask of a cluster."""

from __future__ import annotations

import json
from collections.abc import Callable

import redis

from tests.support.ledger_checks import read_evidence
from tickonce._storage.keys import Keys


def leader_id(client: redis.Redis, prefix: str) -> str | None:
    token = client.get(Keys(prefix).lease)
    return str(token).split("#")[0] if token else None


def runner_parts(runner: str) -> tuple[str, int, str]:
    """A runner id ``host:pid:nonce`` (``connection.runner_id``) as (host, pid, nonce)."""
    host, pid, nonce = runner.split(":")  # hostnames never contain ":"
    return host, int(pid), nonce


def host_of(runner: str) -> str:
    return runner_parts(runner)[0]


def pid_of(runner: str) -> int:
    return runner_parts(runner)[1]


def leader_pid(client: redis.Redis, prefix: str) -> int | None:
    leader = leader_id(client, prefix)
    return pid_of(leader) if leader else None


def probe_runs(client: redis.Redis, prefix: str) -> int:
    return len(read_evidence(client, prefix).succeeded_times)


def runs_at_least(client: redis.Redis, prefix: str, count: int) -> Callable[[], bool]:
    """A condition: the probe has run at least ``count`` times."""
    return lambda: probe_runs(client, prefix) >= count


def fired_since(client: redis.Redis, prefix: str, moment: float, not_by: str) -> float | None:
    """Start time of the first probe run after ``moment`` by someone other than ``not_by``."""
    starts = [
        e.started_at.timestamp()
        for e in read_evidence(client, prefix).ledger
        if e.started_at and e.started_at.timestamp() >= moment and e.runner != not_by
    ]
    return min(starts) if starts else None


def member_roles(client: redis.Redis, prefix: str) -> dict[str, str]:
    """Each contender's last announced role."""
    infos = client.hgetall(Keys(prefix).member_info)
    return {str(member): json.loads(info)["role"] for member, info in infos.items()}
