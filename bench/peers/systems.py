"""The systems compared: how each is installed (a virtualenv of its own, pinned packages) and
how one instance of it is started."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import REPO, Processes

VENVS = REPO / ".peers"


@dataclass(frozen=True)
class System:
    name: str  # its virtualenv's and processes' name
    title: str  # as the report shows it
    versions: str
    packages: tuple[str, ...] = ()  # pinned; empty: the project's own environment
    setting: str = "defaults"  # as the report shows it
    settings: tuple[tuple[str, str], ...] = ()  # environment of that setting
    prefix: str = field(default_factory=lambda: f"peers-{uuid.uuid4().hex[:6]}:")

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
            [self.bin("pip"), "install", "--quiet", *self.packages], check=True, timeout=600
        )
        stamp.touch()

    def start(self, processes: Processes, n: int, redis_url: str, key: str, *, jobs: int) -> None:
        """Instance ``n``: its processes, recording into list ``key``."""
        env = {
            "PEERS_REDIS": redis_url,
            "PEERS_KEY": key,
            "PEERS_JOBS": str(jobs),
            "PEERS_INSTANCE": f"{self.name}-{n}",
        }
        for part, argv in self.argv(redis_url).items():
            processes.start(
                f"{self.name}-{n}-{part}", argv, **env, **self.env(redis_url), **dict(self.settings)
            )

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
            "KEY_PREFIX": self.prefix,
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


SYSTEMS: list[System] = [
    Naive("naive", "naive recipe", "APScheduler 3.11 (the project's)"),
    Tickonce("tickonce", "tickonce", "this commit"),
    Tickonce(
        "tickonce",
        "tickonce",
        "this commit",
        setting="LEASE_TTL_SECONDS=1",
        settings=(("LEASE_TTL_SECONDS", "1"),),
    ),
    Arq("arq", "arq cron", "arq 0.28.0", ("arq==0.28.0",)),
    RqCron("rq", "RQ cron", "rq 3.0.0", ("rq==3.0.0",)),
    CeleryRedBeat(
        "celery",
        "Celery beat + RedBeat",
        "celery 5.5.3, celery-redbeat 2.4.2",
        ("celery[redis]==5.5.3", "celery-redbeat==2.4.2"),
    ),
    CeleryRedBeat(
        "celery",
        "Celery beat + RedBeat",
        "celery 5.5.3, celery-redbeat 2.4.2",
        ("celery[redis]==5.5.3", "celery-redbeat==2.4.2"),
        setting="redbeat_lock_timeout=5, beat_max_loop_interval=1",
        settings=(("PEERS_FAST_FAILOVER", "1"),),
    ),
]
