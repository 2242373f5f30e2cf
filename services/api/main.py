"""The ASGI app: ``services.api.main:app`` (run it under gunicorn with UvicornWorker).

It is tickonce's API at the root of an app of its own; a team's own app gets the same with
``include_tickonce`` (services/api/integration.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from services.api.integration import include_tickonce
from services.core.settings import Settings
from services.core.startup import prepare

# gunicorn halts (instead of respawning workers forever) when a worker exits with this code.
APP_LOAD_ERROR = 4


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; with SCHEDULER_MODE=embedded each worker also contends for leadership."""
    if settings is None:
        settings = prepare(exit_code=APP_LOAD_ERROR)
    app = FastAPI(
        title="tickonce",
        summary="Exactly-once periodic jobs across every worker and replica.",
        version="0.2.0",
    )
    include_tickonce(app, prefix="", settings=settings)
    return app


app = create_app()
