"""A real redis-server process per test session (or per test), on a free loopback port."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """redis-server on 127.0.0.1; can be paused (SIGSTOP), stopped and started again."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        persist: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run `bash .ci/run` or "
                "`apt-get install redis-server`"
            )
        self.binary = binary
        self.port = port or free_port()
        self.workdir = workdir
        self.persist = persist
        self.extra = extra  # more redis-server arguments (say, --replicaof host port)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"]
            if self.persist
            else ["--appendonly", "no"]
        )
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(self.workdir),
                # DEBUG SLEEP stalls the server on demand (tests of Redis hiccups).
                "--enable-debug-command",
                "yes",
                *persistence,
                *self.extra,
            ],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis(port=self.port, socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()  # nothing left running; its log says why
        raise RuntimeError(
            f"redis-server did not start on port {self.port} (see {self.workdir / 'redis.log'})"
        )

    def stop(self) -> None:
        """SIGKILL: as abrupt as a crash (with AOF fsync always, nothing acknowledged is lost)."""
        if self.process is not None:
            self.resume()
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a partition)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def replica(self, workdir: Path, *, persist: bool = False) -> RedisServer:
        """Start a replica of this server; return once its link to this one is up."""
        replica = RedisServer(
            workdir, persist=persist, extra=("--replicaof", "127.0.0.1", str(self.port))
        ).start()
        deadline = time.monotonic() + 20
        with replica.client() as client:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    replica.stop()
                    raise RuntimeError(
                        f"replica on port {replica.port} never linked to {self.port}"
                    )
                time.sleep(0.05)
        return replica

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)

    def stall(self, seconds: float, *, after: float = 0.0) -> threading.Thread:
        """Stall the server for ``seconds`` (``DEBUG SLEEP``: it answers nothing meanwhile,
        then executes what queued up), starting ``after`` seconds from now, in the background.
        Join the returned thread to wait for the stall to end."""

        def sleep() -> None:
            time.sleep(after)
            with redis.Redis(port=self.port, socket_timeout=seconds + 5) as client:
                client.execute_command("DEBUG", "SLEEP", f"{seconds:.3f}")

        thread = threading.Thread(target=sleep, daemon=True)
        thread.start()
        return thread
