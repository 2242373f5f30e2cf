"""The body pool keeps bodies starting while its event loop is busy (a wakeup planning many
jobs): a body queued behind a finished one does not wait for the loop to read that end."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from datetime import UTC, datetime

from tests.support.processes import REPO
from tickonce._bodies.pool import BodyPool
from tickonce._bodies.worker import BodyRef
from tickonce._jobs.registry import RunContext

NOOP = BodyRef("tests.support.pool_bodies", "noop")


def keep_the_loop_busy(seconds: float) -> None:
    """Block the event loop, as a wakeup planning many jobs does."""
    time.sleep(seconds)


def context() -> RunContext:
    return RunContext("pooled", datetime.now(UTC), 1, "test-runner")


async def test_a_body_queued_behind_a_finished_one_starts_while_the_loop_is_busy() -> None:
    pool = BodyPool(1, stop_grace=1)
    try:
        await asyncio.wait_for(pool.submit(NOOP, {}, context()).ended, 30)  # a warm worker
        first = pool.submit(NOOP, {}, context())
        keep_the_loop_busy(0.5)  # the first body's end waits unread in its pipe
        second = pool.submit(NOOP, {}, context())
        keep_the_loop_busy(0.5)
        busy_until = datetime.now(UTC)
        ends = await asyncio.wait_for(asyncio.gather(first.ended, second.ended), 10)
        assert [end.status for end in ends] == ["succeeded", "succeeded"]
        started = ends[1].started_at
        assert started is not None and started < busy_until, (
            f"the queued body started at {started}, after the loop was free at {busy_until}"
        )
    finally:
        await pool.close()


async def test_ends_read_early_are_not_read_again_when_the_loop_gets_to_them() -> None:
    """Three workers end while the loop is busy and two bodies wait: the first end the loop
    reads frees a worker for one of them, and taking in the other ends early frees the rest.
    The loop then must not read those pipes again: the idle worker's read would block the
    loop for good, and this test would time out."""
    pool = BodyPool(3, stop_grace=1)
    try:
        await asyncio.wait_for(
            asyncio.gather(*(pool.submit(NOOP, {}, context()).ended for _ in range(3))), 30
        )
        for _ in range(5):
            runs = [pool.submit(NOOP, {}, context()) for _ in range(5)]  # 3 start, 2 wait
            keep_the_loop_busy(0.3)  # while the three end
            ends = await asyncio.wait_for(asyncio.gather(*(run.ended for run in runs)), 10)
            assert {end.status for end in ends} == {"succeeded"}
    finally:
        await pool.close()


# A process starting its pool, SIGTERMed with its whole group (systemd, ``kill -TERM -pgid``,
# a test's killpg) while the fork server is still importing what it preloads.
STARTING_POOL = """
import asyncio, contextlib, multiprocessing.forkserver as forkserver, os, signal, threading, time
from datetime import UTC, datetime
from tickonce._bodies.pool import BodyPool
from tickonce._bodies.worker import BodyRef
from tickonce._jobs.registry import RunContext

async def main():
    pool = BodyPool(1, stop_grace=1)

    def terminate_it_as_it_starts():  # the first fork server: the group's SIGTERM reaches it once
        while (server := forkserver._forkserver._forkserver_pid) is None:
            time.sleep(0.001)
        for _ in range(50):  # from its start to well into its preloads
            with contextlib.suppress(ProcessLookupError):
                os.kill(server, signal.SIGTERM)
            time.sleep(0.01)

    threading.Thread(target=terminate_it_as_it_starts, daemon=True).start()
    run = pool.submit(BodyRef("tests.support.pool_bodies", "noop"), {},
                      RunContext("pooled", datetime.now(UTC), 1, "test-runner"))
    end = await asyncio.wait_for(run.ended, 30)
    print(end.status)
    await pool.close()

asyncio.run(main())
"""


def test_a_sigterm_while_the_fork_server_starts_does_not_end_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STARTING_POOL],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stdout.strip() == "succeeded", done.stderr[-2000:]
