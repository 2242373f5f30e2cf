"""The HA compose stack (docker-compose.ha.yml): Redis as a primary, two replicas and three
Sentinels; two schedulers and the api find the primary through the Sentinels. Under the 1-s
heartbeat and steady API requests, whichever container is the primary is SIGKILLed, twice in
a row (each time brought back once a replica is promoted, as its restart policy would).

With durable claims (CLAIM_MIN_REPLICAS=1): no heartbeat fire time runs twice, every fire time
is in the ledger (run, or recorded with the reason it did not run), the schedulers and the api
recover by themselves. With them off, the same faults; what happens is printed for the README
(a claim the old primary had not replicated can be lost with it), and only the recovery is
asserted.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.compose_stack import compose_project, stack_env
from tests.support.ledger_checks import duplicates, gaps, spread
from tests.support.processes import REPO, wait_until
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.chaos]

KILLS = 2
NET = "10.213.0"  # docker-compose.ha.yml's default HA_NET: the nodes' fixed addresses
NODES = {f"{NET}.11": "redis", f"{NET}.12": "redis-replica-1", f"{NET}.13": "redis-replica-2"}


class HaStack:
    def __init__(self, compose: Any, base: str) -> None:
        self.compose = compose
        self.base = base

    def get(self, path: str) -> Any:
        answer = httpx.get(self.base + path, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def sentinel(self, *command: str) -> str:
        stdout, _, _ = self.compose.exec_in_container(
            ["redis-cli", "-p", "26379", *command], "sentinel-1"
        )
        return str(stdout)

    def primary(self) -> str:
        """The primary's service name, as Sentinel 1 gives it ("" while it cannot say)."""
        words = self.sentinel("sentinel", "get-master-addr-by-name", "mymaster").split()
        return NODES.get(words[0], words[0]) if words else ""

    def replicas(self) -> list[dict[str, str]]:
        """The primary's replicas as Sentinel 1 lists them, each a dict of its fields."""
        words = self.sentinel("sentinel", "replicas", "mymaster").split()
        found: list[dict[str, str]] = []
        for key, value in zip(words[::2], words[1::2], strict=False):
            if key == "name":
                found.append({})
            if found:
                found[-1][key] = value
        return found

    def replicas_up(self) -> int:
        """Replicas that are up and replicating from the primary (a promotion can pick them)."""
        return sum(
            replica.get("flags") == "slave" and replica.get("master-link-status") == "ok"
            for replica in self.replicas()
        )

    def compose_run(self, *args: str) -> None:
        command = [*self.compose.compose_command_property, *args]
        subprocess.run(command, cwd=REPO, check=True, timeout=120, capture_output=True)

    def runs(self) -> list[dict[str, Any]]:
        try:
            runs: list[dict[str, Any]] = self.get("/jobs/heartbeat/runs?limit=1000")
        except httpx.HTTPError:
            return []
        return runs

    def describe(self) -> str:
        """What to look at when a wait times out."""
        runs = self.runs()
        statuses = Counter(f"{run['status']}:{run['reason']}" for run in runs)
        newest = [(run["scheduled_at"], run["status"], run["reason"]) for run in runs[:8]]
        try:
            leaders = self.get("/scheduler")["members"]
        except httpx.HTTPError as exc:
            leaders = [str(exc)]
        return (
            f"primary {self.primary()!r}; replicas {self.replicas()}; heartbeat ledger "
            f"{dict(statuses)}; newest {newest}; members {leaders}"
        )


@dataclass
class Traffic:
    """GET requests to the api every 0.1 s from a thread: how many failed, and when."""

    base: str
    answered: int = 0
    failed: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=5) as http:
            while not self._stop.is_set():
                try:
                    ok = http.get("/jobs/heartbeat").status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.answered += 1
                else:
                    self.failed.append(time.time())
                self._stop.wait(0.1)

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def stack(tmp_path_factory: pytest.TempPathFactory, durable: int) -> Iterator[HaStack]:
    port = free_port()
    env = stack_env(port, CLAIM_MIN_REPLICAS=str(durable))
    workdir = tmp_path_factory.mktemp(f"ha-{durable}")
    with compose_project(workdir, "tickonce-ha", ["docker-compose.ha.yml"], env) as compose:
        yield HaStack(compose, f"http://127.0.0.1:{port}")


@pytest.fixture
def ha_durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    yield from stack(tmp_path_factory, durable=1)


@pytest.fixture
def ha_not_durable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HaStack]:
    yield from stack(tmp_path_factory, durable=0)


def ms(text: str) -> int:
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def succeeded_after(ha: HaStack, moment: float) -> float | None:
    """When the first heartbeat scheduled after ``moment`` started, if one succeeded yet."""
    starts = [
        datetime.fromisoformat(run["started_at"]).timestamp()
        for run in ha.runs()
        if run["status"] == "succeeded" and ms(run["scheduled_at"]) >= moment * 1000
    ]
    return min(starts) if starts else None


@dataclass
class Failover:
    killed: str
    promoted_after: float  # s from the kill to the Sentinels naming a new primary
    heartbeat_after: float  # s from the kill to the first heartbeat run since


def kill_primaries(ha: HaStack) -> tuple[list[Failover], float]:
    """Kill whichever node is the primary, ``KILLS`` times in a row. Returns the failovers and
    when the first kill happened."""
    wait_until(lambda: succeeded_after(ha, 0), 90, "a heartbeat before the faults")
    wait_until(lambda: ha.replicas_up() == 2, 60, "two replicas linked")
    started = time.time()
    return [fail_over(ha) for _ in range(KILLS)], started


def fail_over(ha: HaStack) -> Failover:
    """Kill the primary; wait for a promotion and a heartbeat run; start the killed node again
    (it rejoins as a replica, as its restart policy would bring it back)."""
    old = ha.primary()
    assert old in NODES.values(), ha.describe()
    killed_at = time.time()
    ha.compose_run("kill", old)
    try:
        wait_until(lambda: ha.primary() not in ("", old), 60, "a replica promoted")
        promoted_at = time.time()
        first = wait_until(lambda: succeeded_after(ha, killed_at), 60, "a heartbeat run")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {ha.describe()}") from None
    assert first is not None
    ha.compose_run("start", old)
    wait_until(lambda: ha.replicas_up() == 2, 90, f"{old} back as a replica")
    return Failover(old, promoted_at - killed_at, first - killed_at)


def report(ha: HaStack, durable: int, failovers: list[Failover], traffic: Traffic) -> str:
    runs = ha.runs()
    statuses = Counter(f"{run['status']}:{run['reason']}".rstrip(":") for run in runs)
    lines = [f"CLAIM_MIN_REPLICAS={durable}: {dict(statuses)}"]
    for failover in failovers:
        lines.append(
            f"  {failover.killed} killed: new primary after {failover.promoted_after:.1f} s, "
            f"heartbeat ran again after {failover.heartbeat_after:.1f} s"
        )
    lines.append(f"  api: {traffic.answered} requests answered, {len(traffic.failed)} failed")
    return "\n".join(lines)


def ledger_times(runs: list[dict[str, Any]], since: float) -> list[int]:
    """Every fire time the heartbeat's ledger accounts for from ``since``."""
    times = [
        time
        for run in runs
        for time in spread(
            ms(run["scheduled_at"]), ms(run["until"] or run["scheduled_at"]), run["count"]
        )
    ]
    return [time for time in times if time >= since * 1000]


def test_primary_killed_twice_with_durable_claims_no_fire_time_twice(
    ha_durable: HaStack,
) -> None:
    ha = ha_durable
    with Traffic(ha.base) as traffic:
        failovers, started = kill_primaries(ha)
        recovered = time.time()
        wait_until(lambda: succeeded_after(ha, recovered), 30, "heartbeats going on")
    print(report(ha, 1, failovers, traffic))

    times = ledger_times(ha.runs(), started)
    assert not duplicates(times), f"fire times recorded twice: {duplicates(times)}"
    assert not gaps(times), f"fire times with no ledger entry between {gaps(times)}"
    members = ha.get("/scheduler")["members"]
    assert sorted(member["role"] for member in members) == ["leader", "standby"]
    assert traffic.answered > 0


def test_primary_killed_twice_without_durable_claims_recovers(ha_not_durable: HaStack) -> None:
    ha = ha_not_durable
    with Traffic(ha.base) as traffic:
        failovers, started = kill_primaries(ha)
        recovered = time.time()
        wait_until(lambda: succeeded_after(ha, recovered), 30, "heartbeats going on")
    times = ledger_times(ha.runs(), started)
    print(report(ha, 0, failovers, traffic))
    print(f"  fire times recorded twice: {len(duplicates(times))}; gaps: {gaps(times)}")

    members = ha.get("/scheduler")["members"]
    assert sorted(member["role"] for member in members) == ["leader", "standby"]
    assert traffic.answered > 0
