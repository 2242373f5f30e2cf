"""A ``def`` body that holds the GIL for seconds in one C call (like a heavy regex), and one
that sleeps on past its time: bodies that must neither stall the scheduler nor outlive their
running slot. HOG_N sets the work (tests calibrate it to a few seconds on this machine).
Only for JOBS_MODULES of processes: importing it registers its jobs."""

from __future__ import annotations

import os
import time

from tests.support.body_log import write
from tickonce._jobs.registry import job


@job("interval", seconds=4, id="hog", misfire_grace_time=30)
def hog() -> None:
    sum(range(int(os.environ.get("HOG_N", "100000000"))))  # one C call: never lets go of the GIL


@job("interval", seconds=1, id="long_sync", max_instances=1, misfire_grace_time=30)
def long_sync() -> None:
    write("start")
    try:
        time.sleep(8)  # longer than the running slot outlives a silent leader (3 ttl)
    finally:
        write("end")  # also when stopped
