"""Plain APScheduler 3 in one process, for comparison: N async no-op jobs every second, all
due at the same instant, each body noting how late it started. No Redis, no claims, no other
process: the floor that tickonce's lateness is compared with."""

from __future__ import annotations

import asyncio
import math
import sys
import time
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

late_ms: list[float] = []


async def body() -> None:
    now = time.time()
    late_ms.append((now - math.floor(now)) * 1000)  # its fire time is the whole second


async def main(jobs: int, seconds: float) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    start = datetime.fromtimestamp(math.floor(time.time()) + 2, UTC)
    for n in range(jobs):
        scheduler.add_job(
            body, "interval", seconds=1, start_date=start, id=f"j{n}", misfire_grace_time=None
        )
    scheduler.start()
    await asyncio.sleep(4)
    late_ms.clear()
    await asyncio.sleep(seconds)
    scheduler.shutdown(wait=False)
    print(" ".join(f"{value:.3f}" for value in late_ms))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
