"""Real scheduler and gunicorn processes, each in its own process group, always cleaned up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import httpx

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll until ``condition()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def answers(url: str, timeout: float = 3.0) -> bool:
    """Whether a GET of ``url`` answers 200 within ``timeout`` seconds (a server that is up)."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


class Processes:
    """Starts processes with a given environment; ``close()`` stops every one of them."""

    def __init__(self, logdir: Path, env: Mapping[str, str]) -> None:
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **env}
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, argv: list[str], **env: str) -> subprocess.Popen[bytes]:
        return self.start_in(REPO, name, argv, **env)

    def start_in(
        self, cwd: Path, name: str, argv: list[str], **env: str
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` from directory ``cwd``; its output goes to ``<name>.log``."""
        log = (self.logdir / f"{name}.log").open("ab")
        process = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started[name] = process
        return process

    def scheduler(self, name: str, **env: str) -> subprocess.Popen[bytes]:
        return self.scheduler_in(REPO, name, **env)

    def scheduler_in(self, tree: Path, name: str, **env: str) -> subprocess.Popen[bytes]:
        """A scheduler, as the container runs it, from ``tree`` (this checkout, or another
        release's tree: tests/support/releases.py)."""
        return self.start_in(tree, name, [sys.executable, "-m", "services.scheduler"], **env)

    def refused_start(self, **env: str) -> str:
        """Start a scheduler that must refuse to start: it exits 2 with one line on stderr,
        which is returned."""
        result = subprocess.run(
            [sys.executable, "-m", "services.scheduler"],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr[-2000:]
        return result.stderr.strip().splitlines()[-1]

    def scheduler_in_container(
        self, name: str, hostname: str, **env: str
    ) -> subprocess.Popen[bytes]:
        """A scheduler as a container runs it: pid 1 of a pid namespace of its own, with its own
        hostname (UTS namespace). Starting one again with the same ``hostname`` is a container
        restart: same hostname, pid 1 again. Needs root (``unshare``).

        The namespace dies with its group: a SIGKILL of the group kills ``unshare`` and pid 1
        (which takes everything in the namespace with it), and ``--kill-child`` kills pid 1
        whenever ``unshare`` dies. SIGTERM reaches pid 1 (its handler) through the group.
        """
        shell = 'hostname "$1" && exec "$2" -m services.scheduler'
        argv = ["unshare", "--pid", "--uts", "--mount-proc", "--kill-child", "--"]
        return self.start(name, [*argv, "sh", "-c", shell, "sh", hostname, sys.executable], **env)

    def gunicorn(self, name: str, port: int, workers: int, **env: str) -> subprocess.Popen[bytes]:
        return self.gunicorn_in(REPO, name, port, workers, **env)

    def gunicorn_in(
        self, tree: Path, name: str, port: int, workers: int, **env: str
    ) -> subprocess.Popen[bytes]:
        """gunicorn with the shipped config (deploy/gunicorn.conf.py), on a loopback port, from
        ``tree``; it serves APP_MODULE (tickonce's own app unless ``env`` names another)."""
        return self.start_in(
            tree,
            name,
            [
                str(BIN / "gunicorn"),
                "-c",
                "deploy/gunicorn.conf.py",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
            ],
            **env,
        )

    def by_pid(self, pid: int) -> str | None:
        return next((name for name, proc in self.started.items() if proc.pid == pid), None)

    def signal(self, name: str, signum: int) -> None:
        os.killpg(self.started[name].pid, signum)

    def log(self, name: str) -> str:
        return (self.logdir / f"{name}.log").read_text(errors="replace")

    def terminate(self, name: str, timeout: float = 20) -> int:
        """SIGTERM the group and wait; SIGKILL if it does not exit in time."""
        process = self.started[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        return process.returncode

    def close(self, *, quiet: bool = False) -> None:
        for name in list(self.started):
            with contextlib.suppress(ProcessLookupError):
                self.terminate(name)
            # Orphans of a killed leader (never expected) must not outlive the test either.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.started[name].pid, signal.SIGKILL)
        if quiet:
            return
        for name in self.started:
            tail = self.log(name).splitlines()[-25:]
            print(f"---- {name} (last lines) ----", *tail, sep="\n")
