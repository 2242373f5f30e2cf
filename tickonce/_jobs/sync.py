"""Bring the job store in line with the jobs defined in code: when a leader starts, and again
every few seconds while it leads.

It never destroys what it does not understand:
- a job defined in code is added when missing; a one-off (date) job whose fire time was
  decided is not added again;
- a changed definition is applied, except while the job has overdue fire times (they are
  decided under the definition they were scheduled by first; a later pass applies it), and
  except while another live member's code defines the job as it stands (a rolling deploy:
  the versions do not undo each other, the surviving one applies its own);
- a job this code does not define is kept while any live member defines it (its fires are
  recorded as skipped meanwhile, see firing/run.py); once no live member does, it is retired:
  kept aside, not firing, with its decided mark, for DELETED_JOB_HISTORY_SECONDS (retention.py),
  and code that defines it again within that time gets it back as it was: paused or not, with
  its run-time changes if its definition is the same; a one-off job that fired stays fired.
An unchanged job is left alone: its paused state, next run time and run-time changes stay.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import redis
from apscheduler.triggers.base import BaseTrigger

from tickonce._firing.commit import decided_until
from tickonce._firing.record import fire_ms
from tickonce._firing.scheduler import LeaderScheduler
from tickonce._jobs.registry import JobSpec, Registry
from tickonce._jobs.retention import keep_history, retire_job, retired_job, unretire_job
from tickonce._jobs.tasks import dump_job, load_job, run_task
from tickonce._leadership.membership import definitions_elsewhere
from tickonce._storage.clients import text
from tickonce._storage.keys import Keys

logger = logging.getLogger(__name__)


def sync_registered_jobs(
    scheduler: LeaderScheduler,
    registry: Registry,
    client: redis.Redis,
    keys: Keys,
    *,
    runner_id: str = "",
    window_ms: int = 0,
) -> None:
    """One pass (see the module's docstring).

    :param scheduler: a leader's; once its term is over every call on it raises NotLeaderError
        (firing/scheduler.py), so nothing is recorded as synced, or forgotten, after a call
        that touched no store: the next leader syncs it.
    :param runner_id: this contender's runner id; other live members (heard from within
        ``window_ms``) are asked which jobs their code defines.
    """
    synced = {text(key): text(value) for key, value in client.hgetall(keys.definitions).items()}
    specs = {spec.id: spec for spec in registry.specs() if keys.owns(spec.id)}
    changed = [job_id for job_id, spec in specs.items() if synced.get(job_id) != spec.fingerprint]
    unknown = [job_id for job_id in synced if job_id not in specs]
    elsewhere = definitions_elsewhere(client, keys, window_ms, runner_id, [*changed, *unknown])
    now = datetime.now(UTC)

    for job_id in changed:
        spec = specs[job_id]
        stored = scheduler.get_job(job_id)
        if stored is None:
            _add(scheduler, spec, client, keys)
        elif synced.get(job_id) in elsewhere[job_id]:
            logger.info(
                "job %s: another live member's code defines it as it stands; keeping that "
                "definition until that member stops",
                job_id,
            )
            continue
        elif stored.next_run_time is not None and stored.next_run_time <= now:
            logger.info(
                "job %s: its new definition applies once its overdue fire times are decided",
                job_id,
            )
            continue
        else:
            _update(scheduler, spec, paused=stored.next_run_time is None, now=now)
        client.hset(keys.definitions, job_id, spec.fingerprint)

    for job_id in unknown:
        if elsewhere[job_id]:
            continue  # other code defines it: keep it, and its state, as it is
        stored = scheduler.get_job(job_id)
        retire_job(
            client, keys, job_id, synced[job_id], None if stored is None else dump_job(stored)
        )
        if stored is not None:
            scheduler.remove_job(job_id)
            logger.warning(
                "job %s is no longer defined in the code of any live member; kept aside, not "
                "firing, for DELETED_JOB_HISTORY_SECONDS: code that defines it again gets it "
                "back as it was",
                job_id,
            )
        client.hdel(keys.definitions, job_id)


def _fields(spec: JobSpec) -> dict[str, Any]:
    return {**spec.options, "args": [spec.id, spec.policy.as_arg()], "kwargs": dict(spec.kwargs)}


def _add(scheduler: LeaderScheduler, spec: JobSpec, client: redis.Redis, keys: Keys) -> None:
    trigger = spec.build_trigger()
    if spec.trigger == "date" and _already_fired(trigger, client, keys, spec.id):
        # A one-off job runs once: APScheduler removed it after its fire time was decided;
        # adding it again would only have that time refused.
        return
    fields = _fields(spec)
    paused = spec.start_paused
    retired = retired_job(client, keys, spec.id)
    back = None
    if retired is not None and retired.state is not None:
        try:
            back = load_job(retired.state)
        except Exception:  # damaged, or from code that stored something else: add it anew
            logger.exception("job %s: its kept-aside state cannot be loaded", spec.id)
    if back is not None:  # code defines a retired job again: it comes back as it was
        paused = back.next_run_time is None
        if retired is not None and retired.fingerprint == spec.fingerprint:
            trigger = back.trigger  # and so do its run-time changes
            fields.update(
                args=list(back.args),
                kwargs=dict(back.kwargs),
                name=back.name,
                max_instances=back.max_instances,
                misfire_grace_time=back.misfire_grace_time,
                coalesce=back.coalesce,
            )
    if paused:
        fields["next_run_time"] = None
    scheduler.add_job(run_task, trigger=trigger, id=spec.id, **fields)
    keep_history(client, keys, spec.id)  # a job back in code keeps its ledger for good
    if retired is not None:
        unretire_job(client, keys, spec.id)
    logger.info(
        "job %s %s: %s%s",
        spec.id,
        "back in the schedule" if back is not None else "added",
        trigger,
        " (paused)" if paused else "",
    )


def _update(scheduler: LeaderScheduler, spec: JobSpec, *, paused: bool, now: datetime) -> None:
    trigger = spec.build_trigger()
    next_run = None if paused else trigger.get_next_fire_time(None, now)
    scheduler.modify_job(spec.id, trigger=trigger, next_run_time=next_run, **_fields(spec))
    logger.info(
        "job %s updated to its new definition: %s%s",
        spec.id,
        trigger,
        " (stays paused)" if paused else "",
    )


def _already_fired(trigger: BaseTrigger, client: redis.Redis, keys: Keys, job_id: str) -> bool:
    at = trigger.get_next_fire_time(None, datetime.now(UTC))
    decided = decided_until(client, keys, job_id)
    return at is not None and decided is not None and fire_ms(at) <= decided
