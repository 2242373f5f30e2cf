"""What this machine runs, as the benchmark reports print it: a command's output, versions."""

from __future__ import annotations

import subprocess

from tests.support.processes import REPO


def command_output(*argv: str) -> str:
    """What ``argv`` prints, run from the repository ("not found" if it does not exist)."""
    try:
        return subprocess.run(
            argv, capture_output=True, text=True, cwd=REPO, timeout=30
        ).stdout.strip()
    except OSError:
        return "not found"


def redis_version() -> str:
    """``7.0.15`` from ``Redis server v=7.0.15 sha=...``."""
    for word in command_output("redis-server", "--version").split():
        if word.startswith("v="):
            return word.removeprefix("v=")
    return "unknown"
