"""The ASGI app: ``services.api.main:app`` (run it under gunicorn with UvicornWorker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.api.auth import ReadAccess, reads_protected
from services.api.limits import BodySizeLimit
from services.api.models import ErrorOut
from services.api.routes import health, jobs, metrics, page, scheduler
from services.api.state import ApiState
from services.core.contender import Contender
from services.core.registry import load_job_modules, registry
from services.core.settings import Settings
from services.core.startup import prepare

# gunicorn halts (instead of respawning workers forever) when a worker exits with this code.
APP_LOAD_ERROR = 4

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "The request body is too large."},
    503: {"model": ErrorOut, "description": "Redis is unavailable."},
}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API; with SCHEDULER_MODE=embedded each worker also contends for leadership."""
    if settings is None:
        settings = prepare(exit_code=APP_LOAD_ERROR)
    else:
        load_job_modules(settings.jobs_modules)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = ApiState(settings)
        app.state.tickonce = state
        contender = None
        if settings.scheduler_mode == "embedded":
            contender = Contender(settings, registry, mode="embedded")
            contending = asyncio.create_task(contender.run())
        try:
            yield
        finally:
            if contender is not None:
                await contender.stop()
                await contending
            await state.close()

    app = FastAPI(
        title="tickonce",
        summary="Exactly-once periodic jobs across every worker and replica.",
        version="0.1.0",
        lifespan=lifespan,
        responses=UNAVAILABLE,
    )

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={
                "detail": f"Redis at {settings.redacted_redis_url} is unavailable: "
                f"{settings.redact(str(exc))}"
            },
        )

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own answer, without pydantic's "Value error, " in front of our messages.
        assert isinstance(exc, RequestValidationError)
        errors = [
            {**error, "msg": str(error["msg"]).removeprefix("Value error, ")}
            for error in exc.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})

    app.add_exception_handler(RequestValidationError, invalid_request)
    for error in (RedisConnectionError, RedisTimeoutError, ReadOnlyError):
        app.add_exception_handler(error, redis_unavailable)
    app.add_middleware(BodySizeLimit)
    reads = [ReadAccess] if reads_protected(settings) else []
    app.include_router(health.router)
    app.include_router(scheduler.router, dependencies=reads)
    app.include_router(jobs.router, dependencies=reads)
    app.include_router(metrics.router, dependencies=reads)
    app.include_router(page.router)
    return app


app = create_app()
