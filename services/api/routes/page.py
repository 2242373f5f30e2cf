"""The status page: one self-contained HTML file (no build step, nothing from a CDN)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter()

PAGE = Path(__file__).resolve().parents[1] / "static" / "index.html"


@cache
def _page() -> str:
    return PAGE.read_text(encoding="utf-8")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def status_page() -> HTMLResponse:
    """Leader and standbys, jobs with their recent runs, and pause/resume/run-now buttons."""
    return HTMLResponse(_page())
