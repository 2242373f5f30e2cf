"""RQ's cron (``rq cron``): every job every PEERS_INTERVAL seconds (an interval: RQ's cron
strings have minutes at finest), enqueued for ``rq worker``. The scheduled time is the job's
enqueue time (RQ passes no other)."""

from __future__ import annotations

from rq import cron, get_current_job

from bench.peers.apps.record import interval, job_ids, record


def body(job: str) -> None:
    current = get_current_job()
    enqueued = current.enqueued_at if current is not None else None
    record(job, enqueued.timestamp() if enqueued else 0.0)


for _job in job_ids():
    cron.register(body, queue_name="default", args=(_job,), interval=interval())
