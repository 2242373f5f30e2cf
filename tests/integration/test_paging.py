"""Reads at scale: jobs a page at a time in id order (with filters), and a job's ledger a page
at a time, each page following the one before without gaps or repeats."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.support.leading import lead_for
from tests.support.pool_bodies import noop
from tests.support.redis_server import RedisServer
from tickonce._api.app import create_app
from tickonce._config.settings import Settings
from tickonce._jobs.registry import Registry

JOBS = [f"job-{n:03d}" for n in range(250)]
PAUSED = set(JOBS[::9])  # 28 of them


def every_page(http: TestClient, url: str, **params: Any) -> list[list[dict[str, Any]]]:
    pages = []
    response = http.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        pages.append(response.json())
        following = response.links.get("next")
        if following is None:
            return pages
        response = http.get(following["url"])


async def test_jobs_and_runs_page_through_without_gaps_or_repeats(
    redis_server: RedisServer, make_settings: Callable[..., Settings]
) -> None:
    jobs = Registry()
    for job_id in JOBS:
        jobs.job("interval", hours=1, id=job_id, start_paused=job_id in PAUSED)(noop)
    jobs.job("interval", seconds=1, id="ticker")(noop)
    settings = make_settings(redis_server, jobs_modules=[])
    await lead_for(settings, jobs, 4.5)

    with TestClient(create_app(settings)) as http:
        pages = every_page(http, "/jobs", limit=100)
        assert [len(page) for page in pages] == [100, 100, 51]
        listed = [job["id"] for page in pages for job in page]
        assert listed == sorted([*JOBS, "ticker"]), "every job once, in id order"

        paused = [job for page in every_page(http, "/jobs", paused=True, limit=10) for job in page]
        assert {job["id"] for job in paused} == PAUSED and all(job["paused"] for job in paused)
        scheduled = every_page(http, "/jobs", paused=False, limit=1000)
        assert len([job for page in scheduled for job in page]) == len(JOBS) - len(PAUSED) + 1

        [[only]] = every_page(http, "/jobs", task="ticker")
        assert only["id"] == "ticker"
        assert http.get("/jobs", params={"limit": 1001}).status_code == 422

        runs = http.get("/jobs/ticker/runs", params={"limit": 100}).json()
        assert len(runs) >= 3
        paged = []
        before = ""
        while page := http.get(
            "/jobs/ticker/runs", params={"limit": 1, **({"before": before} if before else {})}
        ).json():
            paged.extend(page)
            before = page[-1]["entry"]
        assert paged == runs, "pages of one entry give the same ledger, newest first"
        refused = http.get("/jobs/ticker/runs", params={"before": "yesterday"})
        assert refused.status_code == 422 and "not a ledger entry id" in refused.text
