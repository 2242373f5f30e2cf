"""The systems compared: how each is installed (a virtualenv of its own, pinned packages), what
it needs besides Redis, and how one instance of it is started."""

from __future__ import annotations

import hashlib
import itertools
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import ClassVar

from bench.peers.postgres import Postgres
from tests.support.processes import REPO, Processes
from tests.support.redis_server import RedisServer

VENVS = REPO / ".peers"


@dataclass
class Backends:
    """The servers every system shares: one Redis, and PostgreSQL for APScheduler 4. Each
    measurement takes a Redis database of its own (``redis_database``), so that nothing one
    leaves behind (queued jobs of a killed instance, say) reaches the next."""

    redis: RedisServer
    postgres: Postgres
    _databases: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    DATABASES: ClassVar[tuple[str, ...]] = ("--databases", "10000")  # redis-server's argument

    def redis_database(self) -> str:
        """The URL of a Redis database no measurement has used."""
        with self._lock:
            number = next(self._databases)
        return f"redis://127.0.0.1:{self.redis.port}/{number}"


@dataclass(frozen=True)
class System:
    name: str  # its virtualenv's and processes' name
    title: str  # as the report shows it
    packages: tuple[str, ...] = ()  # pinned; empty: the project's own environment
    setting: str = "defaults"  # as the report shows it
    settings: tuple[tuple[str, str], ...] = ()  # environment of that setting
    # What the body's "scheduled" time is: the system's own scheduled time, or (where the
    # system gives none) the time its scheduler enqueued or sent the run.
    scheduled_from: str = "scheduled time"
    # Whether a second instance must wait for the first to be up (schema created).
    staggered: bool = False

    @property
    def gives_scheduled_time(self) -> bool:
        return self.scheduled_from == "scheduled time"

    @property
    def label(self) -> str:
        return f"{self.title} ({self.setting})"

    @property
    def versions(self) -> str:
        """What ran: the pinned packages, or the project's own."""
        if self.packages:
            return ", ".join(re.sub(r"\[.*\]", "", package) for package in self.packages)
        return f"this repository, apscheduler=={metadata.version('apscheduler')}"

    @property
    def venv(self) -> Path:
        return VENVS / self.name if self.packages else Path(sys.executable).parents[1]

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def install(self) -> None:
        """The system's virtualenv with its pinned packages (again only when they change)."""
        if not self.packages:
            return
        stamp = (
            self.venv
            / f".installed-{hashlib.sha256(repr(self.packages).encode()).hexdigest()[:12]}"
        )
        if stamp.exists():
            return
        print(f"==> installing {self.name}: {' '.join(self.packages)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(self.venv)], check=True)
        subprocess.run(
            [self.bin("pip"), "install", "--quiet", *self.packages], check=True, timeout=900
        )
        stamp.touch()

    def prepare(self, backends: Backends) -> dict[str, str]:
        """What a measurement's instances share besides Redis (environment for all of them)."""
        return {}

    def start(
        self, processes: Processes, n: int, redis_url: str, key: str, shared: dict[str, str]
    ) -> None:
        """Instance ``n``: its processes, on the Redis database ``redis_url``, recording into
        list ``key`` there."""
        env = {
            "PEERS_REDIS": redis_url,
            "PEERS_KEY": key,
            "PEERS_INSTANCE": f"{self.name}-{n}",
            **shared,
            **self.env(redis_url),
            **dict(self.settings),
        }
        for part, argv in self.argv(redis_url).items():
            processes.start(f"{self.name}-{n}-{part}", argv, **env)

    def instance_processes(self, processes: Processes, instance: str) -> list[str]:
        """The names of the processes of ``instance`` (as records name it: ``<name>-<n>``)."""
        return [name for name in processes.started if name.startswith(f"{instance}-")]

    def argv(self, redis_url: str) -> dict[str, list[str]]:
        raise NotImplementedError

    def env(self, redis_url: str) -> dict[str, str]:
        return {}


class Naive(System):
    def argv(self, redis_url: str) -> dict[str, list[str]]:
        return {"app": [self.bin("python"), "-m", "bench.peers.apps.naive"]}


class Tickonce(System):
    def argv(self, redis_url: str) -> dict[str, list[str]]:
        return {"scheduler": [self.bin("python"), "-m", "services.scheduler"]}

    def env(self, redis_url: str) -> dict[str, str]:
        return {
            "REDIS_URL": redis_url,
            "KEY_PREFIX": "peers:",
            "JOBS_MODULES": "bench.peers.apps.tickonce_jobs",
            "LOG_LEVEL": "WARNING",
        }


class Arq(System):
    def argv(self, redis_url: str) -> dict[str, list[str]]:
        return {"worker": [self.bin("arq"), "bench.peers.apps.arq_app.WorkerSettings"]}


class RqCron(System):
    def argv(self, redis_url: str) -> dict[str, list[str]]:
        return {
            "cron": [self.bin("rq"), "cron", "-u", redis_url, "bench/peers/apps/rq_cron.py"],
            "worker": [self.bin("rq"), "worker", "-u", redis_url, "default"],
        }


class CeleryRedBeat(System):
    def argv(self, redis_url: str) -> dict[str, list[str]]:
        app = "bench.peers.apps.celery_app"
        return {
            "beat": [self.bin("celery"), "-A", app, "beat", "-S", "redbeat.RedBeatScheduler"],
            "worker": [self.bin("celery"), "-A", app, "worker", "--concurrency", "2"],
        }


class ApScheduler4(System):
    def prepare(self, backends: Backends) -> dict[str, str]:
        return {"PEERS_POSTGRES": backends.postgres.database()}

    def argv(self, redis_url: str) -> dict[str, list[str]]:
        return {"scheduler": [self.bin("python"), "-m", "bench.peers.apps.aps4_app"]}


CELERY = ("celery[redis]==5.5.3", "celery-redbeat==2.4.2")
# sniffio: APScheduler 4.0.0a6's SQLAlchemy store imports it without declaring it (newer
# anyio releases no longer bring it).
APS4 = (
    "apscheduler[asyncpg,redis,sqlalchemy]==4.0.0a6",
    "sqlalchemy[asyncio]==2.0.44",
    "asyncpg==0.30.0",
    "redis==6.4.0",
    "sniffio==1.3.1",
)

SYSTEMS: list[System] = [
    Naive("naive", "naive recipe"),
    Tickonce("tickonce", "tickonce"),
    Tickonce(
        "tickonce",
        "tickonce",
        setting="LEASE_TTL_SECONDS=1",
        settings=(("LEASE_TTL_SECONDS", "1"),),
    ),
    Arq("arq", "arq cron", ("arq==0.28.0",)),
    RqCron("rq", "RQ cron", ("rq==3.0.0",), scheduled_from="enqueue time"),
    CeleryRedBeat("celery", "Celery beat + RedBeat", CELERY, scheduled_from="send time"),
    CeleryRedBeat(
        "celery",
        "Celery beat + RedBeat",
        CELERY,
        setting="redbeat_lock_timeout=5, beat_max_loop_interval=1",
        settings=(("PEERS_FAST_FAILOVER", "1"),),
        scheduled_from="send time",
    ),
    ApScheduler4("aps4", "APScheduler 4", APS4, staggered=True),
    ApScheduler4(
        "aps4",
        "APScheduler 4",
        APS4,
        setting="lease_duration=5",
        settings=(("PEERS_LEASE", "5"),),
        staggered=True,
    ),
]
