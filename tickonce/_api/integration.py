"""tickonce in a team's own FastAPI app: ``include_tickonce(app, prefix="/tickonce")``.

One call adds tickonce's endpoints (jobs and their runs, scheduler, metrics, health) and the
status page under ``prefix``, and wraps the app's lifespan: tickonce's clients open before the
app's own lifespan starts and close after it ends; with ``SCHEDULER_MODE=embedded`` each worker
also contends to run the jobs. tickonce's own app (``services.api.main:app``) is this call at
the root.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from tickonce._api.auth import ReadAccess, reads_protected
from tickonce._api.error_handlers import UNAVAILABLE
from tickonce._api.limits import BodySizeLimit
from tickonce._api.routes import health, jobs, metrics, page, scheduler
from tickonce._api.state import ApiState
from tickonce._config.settings import Settings, get_settings
from tickonce._jobs.registry import load_job_modules, registry
from tickonce._leadership.contender import Contender
from tickonce._leadership.stop_signals import on_stop_signals


def include_tickonce(
    app: FastAPI, *, prefix: str = "/tickonce", settings: Settings | None = None
) -> None:
    """Add tickonce's API and status page to ``app`` under ``prefix`` ("" for the root), and
    compose tickonce's lifespan with the app's own.

    :param settings: tickonce's settings; by default read from the environment (``ConfigError``
        names what is wrong). The modules in ``JOBS_MODULES`` are imported here
        (``JobsModuleError`` names the one that fails).
    """
    if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
        raise ValueError(f"prefix {prefix!r}: start it with '/' and do not end it with '/'")
    settings = settings or get_settings()
    load_job_modules(settings.jobs_modules)
    app.router.lifespan_context = _with_tickonce(app.router.lifespan_context, settings)
    app.add_middleware(BodySizeLimit, path_prefix=prefix)
    reads = [ReadAccess] if reads_protected(settings) else []
    app.include_router(health.router, prefix=prefix, responses=UNAVAILABLE)
    for router in (scheduler.router, jobs.router, metrics.router):
        app.include_router(router, prefix=prefix, dependencies=reads, responses=UNAVAILABLE)
    app.include_router(page.router, prefix=prefix)


Lifespan = Any  # Starlette's lifespan context factory: app -> async context manager


def _with_tickonce(inner: Lifespan, settings: Settings) -> Lifespan:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        state = ApiState(settings)
        app.state.tickonce = state
        contender = None
        signals = ExitStack()
        if settings.scheduler_mode == "embedded":
            contender = Contender(settings, registry, mode="embedded")
            contending = asyncio.create_task(contender.run())
            signals.enter_context(on_stop_signals(contender.retire))
        try:
            context: AbstractAsyncContextManager[Any] = inner(app)
            async with context as app_state:
                yield app_state
        finally:
            signals.close()
            if contender is not None:
                await contender.stop()
                await contending
            await state.close()

    return lifespan
