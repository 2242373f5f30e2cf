"""Container health check of the scheduler: ``python -m services.scheduler.healthcheck``.

Healthy while the contention loop keeps touching the alive file. Redis being away does not
make the scheduler unhealthy: restarting it would not help, it recovers by itself.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ALIVE_FILE = Path("/tmp/tickonce-scheduler.alive")
STALE_AFTER_SECONDS = 15.0


def main() -> int:
    try:
        age = time.time() - ALIVE_FILE.stat().st_mtime
    except FileNotFoundError:
        print(f"unhealthy: {ALIVE_FILE} does not exist yet", file=sys.stderr)
        return 1
    if age > STALE_AFTER_SECONDS:
        print(f"unhealthy: the contention loop has not run for {age:.0f}s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
