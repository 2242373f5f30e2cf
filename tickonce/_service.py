"""The scheduler service (``tickonce scheduler``): contend for leadership and fire jobs while
leader.

SIGTERM or SIGINT: stop firing, hand the lease to a standby at once, let running jobs finish
within SHUTDOWN_GRACE_SECONDS, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys

from tickonce._config.settings import Settings, exit_with_config_error
from tickonce._config.startup import prepare
from tickonce._exceptions import ConfigError
from tickonce._health import ALIVE_FILE
from tickonce._jobs.registry import registry
from tickonce._leadership.contender import Contender

logger = logging.getLogger("tickonce.scheduler")


async def serve(settings: Settings) -> None:
    contender = Contender(settings, registry, mode="scheduler")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    running = asyncio.create_task(contender.run())
    alive = asyncio.create_task(keep_alive_file(contender))
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait([stopping, running], return_when=asyncio.FIRST_COMPLETED)
    alive.cancel()
    if running.done():  # it only ends by itself on a setting it cannot work with
        stopping.cancel()
        await contender.stop()
        running.result()
    logger.info(
        "stopping: no new fires; waiting up to %.0fs for running jobs",
        settings.shutdown_grace_seconds,
    )
    await contender.stop()
    await running


async def keep_alive_file(contender: Contender) -> None:
    """Touch the health check's file while the contention loop keeps running."""
    loop = asyncio.get_running_loop()
    while True:
        if contender.last_pass is not None and loop.time() - contender.last_pass < 5:
            with contextlib.suppress(OSError):
                ALIVE_FILE.touch()
        await asyncio.sleep(1)


def run_scheduler() -> None:
    """Run until SIGTERM or SIGINT; exit with one line naming the setting on a bad one."""
    settings = prepare()
    try:
        asyncio.run(serve(settings))
    except ConfigError as exc:
        exit_with_config_error(exc)
    logging.shutdown()
    sys.stdout.flush()
