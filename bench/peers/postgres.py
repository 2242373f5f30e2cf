"""A PostgreSQL server for APScheduler 4's data store: Debian's packages (installed if missing),
a cluster of its own in a temporary directory, on a free loopback port, and a database per
measurement so no schedule outlives the measurement that made it."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.redis_server import free_port


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class Postgres:
    """``postgres`` on 127.0.0.1 with trust authentication, run as the ``postgres`` user when
    this process is root (PostgreSQL refuses to run as root)."""

    def __init__(self) -> None:
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError(
                "PostgreSQL's initdb is not in /usr/lib/postgresql/*/bin: "
                "apt-get install postgresql"
            )
        self.bindir = bindir
        # A directory of its own in /tmp, since the postgres user may not enter the caller's.
        self.workdir = Path(tempfile.mkdtemp(prefix="tickonce-peers-postgres-"))
        self.data = self.workdir / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def _owner(self) -> str | None:
        """Who runs PostgreSQL's programs: ``postgres`` when this process is root."""
        return "postgres" if os.geteuid() == 0 else None

    def start(self) -> Postgres:
        if self._owner:
            shutil.chown(self.workdir, self._owner, self._owner)
        initdb = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"],
            capture_output=True,
            text=True,
            user=self._owner,
            group=self._owner,
        )
        if initdb.returncode:
            raise RuntimeError(f"initdb failed: {initdb.stdout}{initdb.stderr}")
        log = (self.workdir / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [
                *(str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)),
                *("-c", "listen_addresses=127.0.0.1"),
                *("-c", f"unix_socket_directories={self.workdir}"),
                *("-c", "max_connections=200"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=self._owner,
            group=self._owner,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"postgres did not start (see {self.workdir / 'postgres.log'})")

    def database(self) -> str:
        """A new empty database; its SQLAlchemy URL (asyncpg driver)."""
        name = f"peers_{uuid.uuid4().hex[:10]}"
        subprocess.run(
            [
                *("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-q"),
                *("-c", f"CREATE DATABASE {name}"),
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def version(self) -> str:
        result = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True
        )
        return result.stdout.strip().removeprefix("postgres (PostgreSQL) ")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()  # smart shutdown: a few seconds at most here
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)
