"""The status page in a real headless Chromium: jobs appear, and a pause click pauses; with
thousands of jobs it shows and reads one page of them at a time, and finds a job by its id."""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, expect, sync_playwright

from tests.support.processes import REPO, Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._storage.keys import Keys

pytestmark = [pytest.mark.processes, pytest.mark.browser]

TOKEN = "page-token-0123456789abcdef"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "artifacts"
# Without these, Chromium tries to reach Google's services, which this network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: apt-get install chromium "
            "(bash .ci/run does), or set CHROMIUM"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def start_api(processes: Processes, redis_server: RedisServer, **env: str) -> str:
    """The api (2 workers, a scheduler embedded), by default tickonce's own app with the probe
    and control jobs; its URL."""
    port = free_port()
    processes.gunicorn(
        "api",
        port,
        workers=2,
        REDIS_URL=redis_server.url,
        SCHEDULER_MODE="embedded",
        API_TOKEN=TOKEN,
        **{"JOBS_MODULES": "tests.support.probe_jobs,tests.support.control_jobs", **env},
    )
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("shards", [1, 2])
def test_the_page_shows_jobs_and_a_pause_click_pauses_the_job(
    browser: Browser,
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
    shards: int,
) -> None:
    base = start_api(processes, redis_server, SCHEDULER_SHARDS=str(shards))

    def job(job_id: str) -> dict[str, object] | None:
        try:
            answer = httpx.get(f"{base}/jobs/{job_id}", timeout=5)
        except httpx.HTTPError:
            return None
        return answer.json() if answer.status_code == 200 else None

    wait_until(lambda: job("greet") and job("probe"), 30, "the api with its jobs")

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(base + "/")
    greet = page.locator('tr[data-job="greet"]')
    expect(page.locator('tr[data-job="probe"]')).to_be_visible(timeout=10_000)
    expect(greet.locator(".job-state")).to_have_text("active")
    expect(page.locator("#leader")).to_contain_text("epoch")
    if shards > 1:
        expect(page.locator("#leader")).to_contain_text(f"{shards} of {shards} shards led")
    expect(page.locator('tr[data-job="probe"] .timeline span.succeeded').first).to_be_visible(
        timeout=10_000
    )

    page.fill("#token", TOKEN)
    page.click("#save-token")
    greet.locator('button[data-action="pause"]').click()
    expect(greet.locator(".job-state")).to_have_text("paused", timeout=10_000)
    expect(page.locator("#message")).to_contain_text("pause greet: done")
    paused = job("greet")
    assert paused is not None and paused["paused"] is True, "the API agrees: paused"

    ARTIFACTS.mkdir(exist_ok=True)
    name = "status-page.png" if shards == 1 else f"status-page-{shards}-shards.png"
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)
    page.close()


TENANTS = [f"tenant-{n:04d}" for n in range(3000)]
PAGE_SIZE = 25  # the page's PAGE_SIZE


def test_the_page_pages_and_searches_many_jobs_without_loading_them_all(
    browser: Browser,
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    base = start_api(processes, redis_server)
    keys = Keys(prefix)
    raw = redis.Redis.from_url(redis_server.url)
    wait_until(lambda: raw.hexists(keys.jobs, "greet"), 30, "the api with its jobs")
    # 3,000 more jobs, paused, as if created through the API: each a copy of greet's state.
    state = pickle.loads(raw.hget(keys.jobs, "greet"))  # type: ignore[arg-type]
    with raw.pipeline(transaction=False) as pipe:
        for job_id in TENANTS:
            pipe.hset(
                keys.jobs, job_id, pickle.dumps({**state, "id": job_id, "next_run_time": None})
            )
        pipe.execute()

    requested: list[str] = []
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.on("request", lambda request: requested.append(request.url))
    page.goto(base + "/")
    rows = page.locator("tr[data-job]")
    expect(page.locator("#page-info")).to_have_text(f"jobs 1-{PAGE_SIZE}", timeout=10_000)
    expect(rows).to_have_count(PAGE_SIZE)
    expect(rows.first).to_have_attribute("data-job", "greet")  # ids in order: greet, probe, ...
    expect(rows.nth(2)).to_have_attribute("data-job", TENANTS[0])

    page.click("#next-page")
    expect(page.locator("#page-info")).to_have_text(f"jobs {PAGE_SIZE + 1}-{2 * PAGE_SIZE}")
    expect(rows.first).to_have_attribute("data-job", TENANTS[PAGE_SIZE - 2])
    expect(rows).to_have_count(PAGE_SIZE)
    page.click("#prev-page")
    expect(rows.first).to_have_attribute("data-job", "greet")
    expect(page.locator("#prev-page")).to_be_disabled()

    page.fill("#job-search", "ANT-2999")  # any case
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job", "tenant-2999")
    expect(page.locator("#next-page")).to_be_disabled()
    page.fill("#job-search", "no-such-job")
    expect(page.locator("#jobs")).to_contain_text("no job id contains that")
    page.close()

    listed = [url for url in requested if "/jobs?" in url]
    runs = [url for url in requested if url.split("?")[0].endswith("/runs")]
    assert listed and all(f"limit={PAGE_SIZE}" in url for url in listed), listed[:5]
    assert len(runs) <= PAGE_SIZE * len(listed), "runs read only for the jobs on the page"
    assert not any(url.split("?")[0].endswith("/jobs") and "?" not in url for url in requested)


def test_the_page_under_a_teams_app_prefix_reads_and_changes_jobs_there(
    browser: Browser,
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    """The example app (examples/myapp) with tickonce included under /tickonce: its own route
    answers next to tickonce's page, and the page reads and pauses jobs under the prefix."""
    base = start_api(
        processes,
        redis_server,
        APP_MODULE="myapp.main:app",
        JOBS_MODULES="myapp.jobs",
        PYTHONPATH=f"{REPO}:{REPO / 'examples'}",
    )

    def listed() -> list[str]:
        try:
            answer = httpx.get(f"{base}/tickonce/jobs", timeout=5)
        except httpx.HTTPError:
            return []
        return [job["id"] for job in answer.json()] if answer.status_code == 200 else []

    wait_until(lambda: listed() == ["myapp-heartbeat", "myapp-report"], 30, "the app's jobs")
    assert httpx.get(f"{base}/hello", params={"name": "ops"}).json() == {"hello": "ops"}
    assert httpx.get(f"{base}/healthz").status_code == 404, "tickonce stays under its prefix"

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(base + "/tickonce/")
    heartbeat = page.locator('tr[data-job="myapp-heartbeat"]')
    expect(heartbeat.locator(".timeline span.succeeded").first).to_be_visible(timeout=10_000)
    expect(page.locator("#leader")).to_contain_text("epoch")
    page.fill("#token", TOKEN)
    page.click("#save-token")
    heartbeat.locator('button[data-action="pause"]').click()
    expect(heartbeat.locator(".job-state")).to_have_text("paused", timeout=10_000)
    page.close()
    answer = httpx.get(f"{base}/tickonce/jobs/myapp-heartbeat").json()
    assert answer["paused"] is True, "the API under the prefix agrees: paused"
    beats = httpx.get(f"{base}/beats").json()
    assert beats and set(beats.values()) == {1}, f"each heartbeat fire time ran once: {beats}"
