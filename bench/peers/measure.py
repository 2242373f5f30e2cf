"""The measurements: what two instances of a system ran over a window, and how long a run took
to come from the other instance after one was signalled. Every job body records its own start
and the scheduled time its system gives (bench/peers/apps/record.py) into a Redis list per
measurement; these functions read it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import redis

from bench.peers.systems import Backends, System
from tests.support.processes import Processes

START_TIMEOUT = 60.0  # s for a system's first run after its start


@dataclass(frozen=True)
class Entry:
    job: str
    scheduled: float
    started: float
    by: str


def entries(client: redis.Redis, key: str, start: int = 0) -> list[Entry]:
    return [
        Entry(str(item["job"]), float(item["scheduled"]), float(item["started"]), str(item["by"]))
        for item in map(json.loads, client.lrange(key, start, -1))
    ]


def fire_times(scheduled: list[float], interval: float) -> int:
    """Distinct fire times of one job among scheduled times: times within half an interval of
    each other are one fire time (where a system gives its enqueue time as the scheduled time,
    two instances enqueue one fire time apart by up to the time they take to get to it)."""
    count, last = 0, -math.inf
    for at in sorted(scheduled):
        if at - last > interval / 2:
            count += 1
            last = at
    return count


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Runs:
    """What ``instances`` instances of a system ran of ``jobs`` jobs, each every ``interval``
    seconds, over a window of ``window_s`` seconds (a multiple of the interval, so it holds
    exactly ``window_s / interval`` fire times of each job)."""

    system: System
    instances: int
    jobs: int
    interval: int
    window_s: float
    found: list[Entry]

    @property
    def runs(self) -> int:
        return len(self.found)

    @property
    def expected(self) -> int:
        return round(self.window_s / self.interval) * self.jobs

    @property
    def fire_times(self) -> int:
        """Fire times that ran. Where the system gives no scheduled time (only when it enqueued
        a run), fire times cannot be told apart: each run counts, up to the expected number."""
        if not self.system.gives_scheduled_time:
            return min(self.runs, self.expected)
        by_job: dict[str, list[float]] = {}
        for entry in self.found:
            by_job.setdefault(entry.job, []).append(entry.scheduled)
        return sum(fire_times(scheduled, self.interval) for scheduled in by_job.values())

    @property
    def duplicates(self) -> int:
        return self.runs - self.fire_times

    @property
    def missed(self) -> int:
        return max(0, self.expected - self.fire_times)

    def lateness_ms(self, q: float) -> float:
        return 1000 * percentile([e.started - e.scheduled for e in self.found], q)


class Pair:
    """The instances of one system for one measurement, recording into a key of their own."""

    def __init__(
        self, backends: Backends, workdir: Path, system: System, jobs: int, interval: int = 1
    ) -> None:
        self.system = system
        self.redis_url = backends.redis_database()
        self.client = redis.Redis.from_url(self.redis_url, decode_responses=True, socket_timeout=5)
        self.key = f"peers:{uuid.uuid4().hex[:8]}"
        self.processes = Processes(workdir / f"{system.name}-{self.key[-8:]}", {})
        self.shared = {
            "PEERS_JOBS": str(jobs),
            "PEERS_INTERVAL": str(interval),
            **system.prepare(backends),
        }

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *_: object) -> None:
        """Every process SIGKILLed (what ran is already read; no shutdown to wait for)."""
        for process in self.processes.started.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        self.client.flushdb()
        self.client.close()

    def start(self, instances: int = 2) -> None:
        for n in range(instances):
            self.system.start(self.processes, n, self.redis_url, self.key, self.shared)
            if n == 0 and self.system.staggered:
                self.first_run()

    def first_run(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while not self.client.llen(self.key):
            exited = self.exited()
            if exited or time.monotonic() > deadline:
                logs = "\n".join(
                    f"--- {name}\n{self.processes.log(name)[-2000:]}"
                    for name in self.processes.started
                )
                why = f"{', '.join(exited)} exited" if exited else f"none in {START_TIMEOUT:.0f} s"
                raise RuntimeError(f"{self.system.label}: no first run ({why})\n{logs}")
            time.sleep(0.1)

    def exited(self) -> list[str]:
        """The processes that have exited."""
        return [name for name, p in self.processes.started.items() if p.poll() is not None]

    def quiet(self, settle: float = 2.0, cap: float = 30.0) -> None:
        """Wait until no run has started for ``settle`` s (a backlog worked off), at most
        ``cap`` s."""
        deadline = time.monotonic() + cap
        last = time.time()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            last = max([last, *(entry.started for entry in self.entries(-200))])
            if time.time() - last >= settle:
                return

    def entries(self, start: int = 0) -> list[Entry]:
        """What was recorded, from the ``start``-th record (negative: from the end)."""
        return entries(self.client, self.key, start)


def measure_runs(
    backends: Backends, workdir: Path, system: System, jobs: int, interval: int, window: float
) -> Runs:
    """Two instances of ``system`` running ``jobs`` jobs every ``interval`` s; what ran during
    ``window`` s (after a start of at least 5 s, so both instances are up and their first fires
    done)."""
    with Pair(backends, workdir, system, jobs, interval) as pair:
        pair.start()
        pair.first_run()
        time.sleep(5 + interval)
        start = time.time()
        time.sleep(window)
        end = time.time()
        pair.quiet()  # the window's last runs recorded, however late they start
        found = [entry for entry in pair.entries() if start <= entry.scheduled < end]
    return Runs(system, 2, jobs, interval, window, found)


@dataclass(frozen=True)
class Takeover:
    """One try: ``gap`` s from the signal to the first run started by the other instance
    (None: none within the cap), and how many fire times of the 1-s job before that run had
    no run at all (None: unknown, no run came)."""

    gap: float | None
    lost: int | None


@dataclass
class Failover:
    system: System
    signal: str
    cap: float
    tries: list[Takeover]

    @property
    def gaps(self) -> list[float | None]:
        return [t.gap for t in self.tries]

    def describe(self, takeover: Takeover) -> str:
        lost = "" if takeover.lost is None else f" ({takeover.lost} lost)"
        return self.show(takeover.gap) + lost

    def show(self, gap: float | None) -> str:
        return f"> {self.cap:.0f} s" if gap is None else f"{gap:.1f} s"

    @property
    def median_gap(self) -> float:
        """The median gap, s; math.inf where it is beyond the cap."""
        ordered = sorted(math.inf if gap is None else gap for gap in self.gaps)
        return ordered[len(ordered) // 2]

    @property
    def median(self) -> str:
        return self.show(None if self.median_gap == math.inf else self.median_gap)

    @property
    def worst(self) -> str:
        return self.show(None if None in self.gaps else max(g for g in self.gaps if g is not None))


def lost_fire_times(found: list[Entry], first: Entry) -> int:
    """Fire times of a 1-s job with no run between the last one run before ``first`` and
    ``first`` itself."""
    before = [entry.scheduled for entry in found if entry.scheduled < first.scheduled - 0.5]
    return max(0, round(first.scheduled - max(before)) - 1) if before else 0


def failover_gap(
    backends: Backends, workdir: Path, system: System, signum: int, offset: float, cap: float
) -> Takeover:
    """Two instances; every process of the one that ran the last run gets ``signum``, landing
    ``offset`` s after a whole second (every job is due on whole seconds); how long until a run
    starts by the other instance (none within ``cap`` s: no gap)."""
    with Pair(backends, workdir, system, 1) as pair:
        pair.start()
        pair.first_run()
        time.sleep(5)  # the second instance up too (a standby ready to take over)
        now = time.time()
        time.sleep(math.floor(now) + 1 + offset - now)
        firing = pair.entries()[-1].by
        for name in system.instance_processes(pair.processes, firing):
            pair.processes.signal(name, signum)
        signalled = time.time()
        while time.time() < signalled + cap:
            found = pair.entries()
            after = [e for e in found if e.started > signalled and e.by != firing]
            if after:
                first = min(after, key=lambda entry: entry.started)
                return Takeover(first.started - signalled, lost_fire_times(found, first))
            time.sleep(0.1)
        return Takeover(None, None)


@dataclass
class ColdStarts:
    """Two instances started at the same moment on state no instance has made yet."""

    system: System
    exited: list[bool]  # per try: whether an instance exited within the grace time


def cold_start_exits(backends: Backends, workdir: Path, system: System, grace: float) -> bool:
    """Whether an instance of two started together (no stagger) exits within ``grace`` s."""
    with Pair(backends, workdir, dataclasses.replace(system, staggered=False), 1) as pair:
        pair.start()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if pair.exited():
                return True
            time.sleep(0.1)
        return False
