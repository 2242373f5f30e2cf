"""The api container's health check: ``python -m services.api.healthcheck`` (0 = healthy)."""

import sys

from tickonce._health import api_health

if __name__ == "__main__":
    sys.exit(api_health())
