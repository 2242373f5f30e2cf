"""Container health check of the API: ``python -m services.api.healthcheck`` (exit 0 = healthy)."""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    # PORT and HEALTH_PATH as Settings reads them (not imported: this runs every few seconds).
    port, path = os.environ.get("PORT", "8000"), os.environ.get("HEALTH_PATH", "/healthz")
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
