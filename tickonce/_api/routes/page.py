"""The status page: one self-contained HTML file (no build step, nothing from a CDN)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tickonce._api.error_handlers import TickonceRoute

router = APIRouter(route_class=TickonceRoute)

PAGE = Path(__file__).resolve().parents[1] / "static" / "index.html"


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def status_page(request: Request) -> HTMLResponse:
    """Leader and standbys, jobs with their recent runs, and pause/resume/run-now buttons. The
    page calls the API where it is itself: at the root, or under the app's prefix."""
    base = request.url.path.rstrip("/")
    quoted = json.dumps(base).replace("<", "\\u003c")  # never ends the script element
    return HTMLResponse(_page().replace('"__TICKONCE_BASE__"', quoted))
