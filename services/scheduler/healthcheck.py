"""The scheduler container's health check: ``python -m services.scheduler.healthcheck``
(0 = healthy)."""

import sys

from tickonce._health import scheduler_health

if __name__ == "__main__":
    sys.exit(scheduler_health())
