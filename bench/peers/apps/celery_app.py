"""Celery beat with RedBeat (the schedule and beat's lock in Redis): every job every
PEERS_INTERVAL seconds (an interval schedule: crontab has minutes at finest), sent by the beat
holding the lock to the workers. Celery gives a task no scheduled time, so the
beat stamps each message with the time it sent it (a header), and that stands for it."""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery
from celery.signals import before_task_publish

from bench.peers.apps.record import interval, job_ids, record

TASK = "bench.peers.apps.celery_app.body"
app = Celery("peers", broker=os.environ["PEERS_REDIS"])
app.conf.update(
    redbeat_redis_url=os.environ["PEERS_REDIS"],
    redbeat_key_prefix=os.environ["PEERS_KEY"] + ":redbeat",
    beat_schedule={
        job: {"task": TASK, "schedule": float(interval()), "args": (job,)} for job in job_ids()
    },
    worker_hijack_root_logger=False,
)
if os.environ.get("PEERS_FAST_FAILOVER"):  # what RedBeat's docs suggest for a quick takeover
    app.conf.update(redbeat_lock_timeout=5, beat_max_loop_interval=1)


@before_task_publish.connect
def stamp(headers: dict[str, Any], **_: Any) -> None:
    """In the beat: when, and which instance's beat, sent the task."""
    headers["peers_sent"] = time.time()
    headers["peers_beat"] = os.environ.get("PEERS_INSTANCE", "")


@app.task(name=TASK, bind=True)
def body(self: Any, job: str) -> None:
    sent = float(getattr(self.request, "peers_sent", 0.0) or 0.0)
    record(job, sent, by=str(getattr(self.request, "peers_beat", "") or ""))
