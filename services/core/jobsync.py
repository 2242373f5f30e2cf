"""Bring the job store in line with the jobs defined in code, when a leader starts."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from services.core.claims import decided_until
from services.core.connection import text
from services.core.execution import run_task
from services.core.keys import Keys
from services.core.ledger import fire_ms
from services.core.registry import Registry

logger = logging.getLogger(__name__)


def sync_registered_jobs(
    scheduler: BaseScheduler, registry: Registry, client: redis.Redis, keys: Keys
) -> None:
    """Add new jobs, update jobs whose definition changed in code, drop jobs removed from code.

    A job whose definition is unchanged is left alone: its paused state, its next run time and
    any change made at run time stay as they are.
    """
    synced = {text(key): text(value) for key, value in client.hgetall(keys.definitions).items()}
    for spec in registry.specs():
        stored = scheduler.get_job(spec.id)
        fields: dict[str, Any] = {
            **spec.options,
            "args": [spec.id, spec.policy.as_arg()],
            "kwargs": dict(spec.kwargs),
        }
        if stored is None:
            trigger = spec.build_trigger()
            if spec.trigger == "date" and _already_fired(trigger, client, keys, spec.id):
                # A one-off job runs once: APScheduler removed it after its fire time was
                # decided; adding it again would only have that time refused.
                client.hset(keys.definitions, spec.id, spec.fingerprint)
                continue
            if spec.start_paused:
                fields["next_run_time"] = None
            scheduler.add_job(run_task, trigger=trigger, id=spec.id, **fields)
            logger.info(
                "job %s added: %s%s", spec.id, trigger, " (paused)" if spec.start_paused else ""
            )
        elif synced.get(spec.id) != spec.fingerprint:
            trigger = spec.build_trigger()
            paused = stored.next_run_time is None
            next_run = (
                None
                if paused
                else trigger.get_next_fire_time(None, datetime.now(scheduler.timezone))
            )
            scheduler.modify_job(spec.id, trigger=trigger, next_run_time=next_run, **fields)
            logger.info(
                "job %s updated to its new definition: %s%s",
                spec.id,
                trigger,
                " (stays paused)" if paused else "",
            )
        client.hset(keys.definitions, spec.id, spec.fingerprint)

    for job_id in set(synced) - {spec.id for spec in registry.specs()}:
        if scheduler.get_job(job_id) is not None:
            scheduler.remove_job(job_id)
            logger.warning(
                "job %s is no longer defined in code; removed from the schedule "
                "(its run history stays)",
                job_id,
            )
        client.hdel(keys.definitions, job_id)


def _already_fired(trigger: BaseTrigger, client: redis.Redis, keys: Keys, job_id: str) -> bool:
    at = trigger.get_next_fire_time(None, datetime.now(UTC))
    decided = decided_until(client, keys, job_id)
    return at is not None and decided is not None and fire_ms(at) <= decided
