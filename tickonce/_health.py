"""Container health checks, cheap enough to run every few seconds: they import nothing heavy
and never connect to Redis.

- the scheduler is healthy while its contention loop keeps touching ``ALIVE_FILE``; Redis
  being away does not make it unhealthy (restarting it would not help, it recovers by itself);
- the API is healthy while its ``HEALTH_PATH`` answers 200 on ``PORT``.
"""

from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

ALIVE_FILE = Path("/tmp/tickonce-scheduler.alive")
STALE_AFTER_SECONDS = 15.0


def scheduler_health() -> int:
    """0 while the scheduler's contention loop runs, else 1 with the reason on stderr."""
    try:
        age = time.time() - ALIVE_FILE.stat().st_mtime
    except FileNotFoundError:
        print(f"unhealthy: {ALIVE_FILE} does not exist yet", file=sys.stderr)
        return 1
    if age > STALE_AFTER_SECONDS:
        print(f"unhealthy: the contention loop has not run for {age:.0f}s", file=sys.stderr)
        return 1
    return 0


def api_health() -> int:
    """0 while the API on this host answers its health path, else 1 with the reason."""
    # PORT and HEALTH_PATH as Settings reads them (not imported: this runs every few seconds).
    port, path = os.environ.get("PORT", "8000"), os.environ.get("HEALTH_PATH", "/healthz")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
