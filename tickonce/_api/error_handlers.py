"""How tickonce's routes answer errors, wherever they are mounted: Redis unavailable is 503
with what failed; a request that does not validate is FastAPI's 422 without pydantic's
"Value error, " in front of tickonce's messages.

Kept on the routes (a route class), not as app-wide exception handlers, so that including
tickonce in a team's own app changes nothing about how that app's own routes answer.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from tickonce._api.models import ErrorOut
from tickonce._storage.clients import REDIS_TROUBLE

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorOut, "description": "The request body is too large."},
    503: {"model": ErrorOut, "description": "Redis is unavailable."},
}


class TickonceRoute(APIRoute):
    """A route of tickonce's API: answers Redis trouble and invalid requests itself, and
    refuses to serve anything, /healthz included, while this replica's settings do not fit the
    data's layout in Redis (a replica with another SCHEDULER_SHARDS would create jobs in shards
    no leader reads them from): such a replica is unhealthy, not only unready."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                refusal = await request.app.state.tickonce.refusal()
            except REDIS_TROUBLE:
                refusal = ""  # Redis is away: each route answers that for itself
            if refusal:
                return JSONResponse(status_code=503, content={"detail": refusal})
            try:
                return await handler(request)
            except RequestValidationError as exc:
                return invalid_request(exc)
            except REDIS_TROUBLE as exc:
                return redis_unavailable(request, exc)

        return answered


def invalid_request(exc: RequestValidationError) -> JSONResponse:
    errors = [
        {**error, "msg": str(error["msg"]).removeprefix("Value error, ")} for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": jsonable_encoder(errors)})


def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
    settings = request.app.state.tickonce.settings
    return JSONResponse(
        status_code=503,
        content={
            "detail": f"Redis at {settings.redacted_redis_url} is unavailable: "
            f"{settings.redact(str(exc))}"
        },
    )
