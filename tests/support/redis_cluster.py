"""A real Redis Cluster of three masters: redis-server processes on loopback, joined with
``redis-cli --cluster create``."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

from redis.cluster import RedisCluster

from tests.support.redis_server import RedisServer


def _cluster_port() -> int:
    """A free loopback port whose cluster bus port (10,000 above) is free too."""
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            with socket.socket() as one, socket.socket() as bus:
                one.bind(("127.0.0.1", port))
                bus.bind(("127.0.0.1", port + 10000))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports for a cluster node")


class RedisClusterGroup:
    """Three cluster-enabled masters sharing the 16,384 slots, no replicas."""

    def __init__(self, workdir: Path, *, masters: int = 3) -> None:
        self.workdir = workdir
        self.nodes = [
            RedisServer(
                workdir / f"node-{n}",
                port=_cluster_port(),
                extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            )
            for n in range(masters)
        ]

    @property
    def url(self) -> str:
        """The URL of one node, as REDIS_URL names a cluster."""
        return self.nodes[0].url

    def start(self) -> RedisClusterGroup:
        """Start the nodes and join them; if that fails, nothing is left running."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed: run `bash .ci/run`")
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        deadline = time.monotonic() + 30
        while not self._ready():
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach state ok")
            time.sleep(0.1)

    def _ready(self) -> bool:
        for node in self.nodes:
            with node.client() as client:
                if "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                    return False
        return True

    def client(self) -> RedisCluster:
        return RedisCluster.from_url(self.url, decode_responses=True, socket_timeout=5)

    def node_of(self, key: str) -> int:
        """Which of ``nodes`` holds ``key``'s slot."""
        with self.client() as client:
            port = client.get_node_from_key(key).port
        return next(n for n, node in enumerate(self.nodes) if node.port == port)

    def keys_per_node(self) -> list[list[str]]:
        found = []
        for node in self.nodes:
            with node.client() as client:
                found.append(sorted(client.keys("*")))
        return found

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
