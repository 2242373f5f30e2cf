"""The status page in a real headless Chromium: jobs appear, and a pause click pauses."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from playwright.sync_api import Browser, expect, sync_playwright

from tests.support.processes import REPO, Processes, wait_until
from tests.support.redis_server import RedisServer, free_port

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


def test_the_page_shows_jobs_and_a_pause_click_pauses_the_job(
    browser: Browser,
    redis_server: RedisServer,
    client: redis.Redis,
    processes: Processes,
    prefix: str,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.gunicorn(
        "api",
        port,
        workers=2,
        REDIS_URL=redis_server.url,
        SCHEDULER_MODE="embedded",
        API_TOKEN=TOKEN,
        JOBS_MODULES="tests.support.probe_jobs,tests.support.control_jobs",
    )

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
    page.screenshot(path=str(ARTIFACTS / "status-page.png"), full_page=True)
    page.close()
