"""Who may read and who may change: bearer tokens, compared in constant time.

``API_TOKEN`` allows everything; ``API_READ_TOKEN`` allows reads only. Reads need a token
when ``API_READ_TOKEN`` is set or ``API_READ_TOKEN_REQUIRED=true`` (see :func:`reads_protected`).
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from tickonce._api.models import ErrorOut
from tickonce._api.state import get_state
from tickonce._config.settings import Settings

_bearer = HTTPBearer(
    auto_error=False,
    description="API_TOKEN (reads and changes) or API_READ_TOKEN (reads only).",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No bearer token was sent."},
    403: {
        "model": ErrorOut,
        "description": "Wrong token, a read-only token, or changes are disabled.",
    },
}
READ_ONLY = "this token may only read; changes need API_TOKEN"


def reads_protected(settings: Settings) -> bool:
    """Whether reads (jobs, runs, scheduler, metrics) need a token."""
    return settings.api_read_token is not None or settings.api_read_token_required


def _matches(credentials: HTTPAuthorizationCredentials, token: SecretStr | None) -> bool:
    if token is None:
        return False
    return hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode())


def _missing(send: str) -> HTTPException:
    return HTTPException(
        status_code=401,
        detail=f"this needs a token: send 'Authorization: Bearer <{send}>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def require_token(request: Request, credentials: Credentials) -> None:
    """Changes: the bearer token must match API_TOKEN (the read token answers 403)."""
    settings = get_state(request).settings
    if settings.api_token is None:
        raise HTTPException(
            status_code=403,
            detail="changes through the API are disabled: set API_TOKEN (16+ characters) on "
            "the api service, then send 'Authorization: Bearer <API_TOKEN>'",
        )
    if credentials is None:
        raise _missing("API_TOKEN")
    # Both comparisons always run, so the time taken does not tell which token was close.
    write = _matches(credentials, settings.api_token)
    read = _matches(credentials, settings.api_read_token)
    if write:
        return
    raise HTTPException(status_code=403, detail=READ_ONLY if read else "wrong token")


def require_read_token(request: Request, credentials: Credentials) -> None:
    """Reads, when protected: the bearer token must match API_READ_TOKEN or API_TOKEN."""
    settings = get_state(request).settings
    accepted = [
        name
        for name, token in (
            ("API_READ_TOKEN", settings.api_read_token),
            ("API_TOKEN", settings.api_token),
        )
        if token is not None
    ]
    if not accepted:
        raise HTTPException(
            status_code=403,
            detail="reads need a token (API_READ_TOKEN_REQUIRED=true) but none is set: set "
            "API_READ_TOKEN or API_TOKEN (16+ characters) on the api service",
        )
    if credentials is None:
        raise _missing(" or ".join(accepted))
    read = _matches(credentials, settings.api_read_token)
    write = _matches(credentials, settings.api_token)
    if not (read or write):
        raise HTTPException(status_code=403, detail="wrong token")


WriteAccess = Depends(require_token)
# create_app adds this to the read routers only when reads_protected(settings), so the OpenAPI
# spec marks reads as secured exactly when they are.
ReadAccess = Depends(require_read_token)
