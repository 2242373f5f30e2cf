"""Jobs the end-to-end stack adds through JOBS_MODULES (mounted into the containers)."""

from __future__ import annotations

from tickonce._jobs.registry import job


@job("interval", minutes=5, id="paused_report", start_paused=True)
def paused_report() -> None:
    """Never runs in the tests: it exists to show that a paused state survives."""
