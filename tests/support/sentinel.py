"""A Sentinel-managed Redis as local processes on loopback: a primary, replicas and three
Sentinels, with quick failure detection, so failovers happen within a test's time."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import redis

from tests.support.processes import wait_until
from tests.support.redis_server import RedisServer, free_port

MASTER = "mymaster"
DOWN_AFTER_MS = 1000


class SentinelGroup:
    """``replicas`` replicas of a primary, watched by three Sentinels (quorum 2)."""

    def __init__(self, workdir: Path, *, replicas: int = 2) -> None:
        self.workdir = workdir
        self.servers: dict[int, RedisServer] = {}
        self.replica_count = replicas
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def addresses(self) -> str:
        """REDIS_SENTINELS for the services."""
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    def start(self) -> SentinelGroup:
        primary = RedisServer(self.workdir / "primary", persist=True).start()
        self.servers[primary.port] = primary
        for n in range(self.replica_count):
            replica = primary.replica(self.workdir / f"replica-{n}", persist=True)
            self.servers[replica.port] = replica
        for n, port in enumerate(self.sentinel_ports):
            self.sentinels.append(self._sentinel(n, port, primary.port))
        wait_until(self._watching, 30, "three Sentinels watching the primary and its replicas")
        return self

    def _sentinel(self, n: int, port: int, primary: int) -> subprocess.Popen[bytes]:
        workdir = self.workdir / f"sentinel-{n}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "sentinel.conf"
        config.write_text(
            "\n".join(
                [
                    f"port {port}",
                    "bind 127.0.0.1",
                    f"dir {workdir}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} 4000",
                    f"sentinel parallel-syncs {MASTER} 2",
                    "",
                ]
            )
        )
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        return subprocess.Popen(
            [binary, str(config), "--sentinel"],
            stdout=(workdir / "sentinel.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def sentinel(self, n: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[n], decode_responses=True, socket_timeout=2)

    def _watching(self) -> bool:
        try:
            for n in range(3):
                with self.sentinel(n) as client:
                    state = client.sentinel_master(MASTER)
                    if int(state["num-slaves"]) < self.replica_count:
                        return False
                    if int(state["num-other-sentinels"]) < 2:
                        return False
        except redis.RedisError:
            return False
        return True

    def master_port(self) -> int | None:
        """The primary's port as the Sentinels name it now (None while none answers)."""
        for n in range(3):
            with contextlib.suppress(redis.RedisError), self.sentinel(n) as client:
                _, port = client.sentinel_get_master_addr_by_name(MASTER)
                return int(port)
        return None

    def primary(self) -> RedisServer:
        port = self.master_port()
        assert port is not None, "no Sentinel names a primary"
        return self.servers[port]

    def kill_primary(self) -> int:
        """SIGKILL the primary; its port."""
        primary = self.primary()
        primary.stop()
        return primary.port

    def freeze_primary(self) -> RedisServer:
        """SIGSTOP the primary: connections to it stay open and hang, as in a partition."""
        primary = self.primary()
        primary.pause()
        return primary

    def wait_for_new_primary(self, old_port: int, timeout: float = 30) -> int:
        """Until the Sentinels have promoted a replica and it accepts writes; its port."""

        def promoted() -> int | None:
            port = self.master_port()
            if port is None or port == old_port:
                return None
            with contextlib.suppress(redis.RedisError), self.servers[port].client() as client:
                if client.info("replication")["role"] == "master":
                    return port
            return None

        began = time.monotonic()
        port = wait_until(promoted, timeout, "a replica promoted by the Sentinels")
        assert port is not None and time.monotonic() - began < timeout
        return port

    def stop(self) -> None:
        for process in self.sentinels:
            process.kill()
            process.wait(timeout=10)
        self.sentinels = []
        for server in self.servers.values():
            server.stop()
