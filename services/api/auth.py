"""Who may change the schedule: a bearer token, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.models import ErrorOut
from services.api.state import ApiState, get_state

_bearer = HTTPBearer(auto_error=False, description="The API_TOKEN of the api service.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No bearer token was sent."},
    403: {"model": ErrorOut, "description": "Wrong token, or changes are disabled."},
}


def _check(state: ApiState, credentials: HTTPAuthorizationCredentials | None) -> None:
    token = state.settings.api_token
    if token is None:
        raise HTTPException(
            status_code=403,
            detail="changes through the API are disabled: set API_TOKEN (16+ characters) on "
            "the api service, then send 'Authorization: Bearer <API_TOKEN>'",
        )
    if credentials is None:
        raise HTTPException(
            status_code=401,
            detail="this needs a token: send 'Authorization: Bearer <API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(status_code=403, detail="wrong token")


def require_token(request: Request, credentials: Credentials) -> None:
    """Mutating endpoints: the bearer token must match API_TOKEN."""
    _check(get_state(request), credentials)


WriteAccess = Depends(require_token)
# Reads take the same check only with API_READ_TOKEN_REQUIRED=true (see create_app), so the
# OpenAPI spec marks them as secured exactly when they are.
ReadAccess = WriteAccess
