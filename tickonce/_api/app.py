"""tickonce's API as an app of its own (the api container serves it: services/api/main.py); a
team's own app gets the same with ``include_tickonce`` (integration.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from tickonce._api.integration import include_tickonce
from tickonce._config.settings import Settings
from tickonce._config.startup import prepare
from tickonce._version import __version__

# gunicorn halts (instead of respawning workers forever) when a worker exits with this code.
APP_LOAD_ERROR = 4


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; with SCHEDULER_MODE=embedded each worker also contends for leadership."""
    if settings is None:
        settings = prepare(exit_code=APP_LOAD_ERROR)
    app = FastAPI(
        title="tickonce",
        summary="Exactly-once periodic jobs across every worker and replica.",
        version=__version__,
    )
    include_tickonce(app, prefix="", settings=settings)
    return app
