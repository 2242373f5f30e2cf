"""Record: every fire time of a job ends as exactly one entry in its ledger (a capped Redis
Stream). Every entry is built here, by the constructors below, one per way a fire can end, and
written either with the claim decisions (commit.py) or, for runs, by ``RunLedger.finish``."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from tickonce._firing.outcome import Reason, Status
from tickonce._storage.clients import evalsha, pipelined_scripts_async, text
from tickonce._storage.counters import flat, run_increments
from tickonce._storage.keys import Keys


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str:
    """ISO 8601 in UTC with milliseconds, the ledger's time format."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else ""


def parse_iso(text: str) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def fire_ms(scheduled_at: datetime) -> int:
    """A fire time as integer epoch milliseconds: the identity of one scheduled run.

    Exact integer arithmetic, truncating like the ledger's ISO text does, so a time read back
    from the ledger names the same fire.
    """
    return (scheduled_at - _EPOCH) // _MS


def fire_id(job_id: str, scheduled_at: datetime, command_id: str = "") -> str:
    """Field of a claimed fire in the inflight hash (a run-now is named by its command)."""
    return f"{job_id}@manual:{command_id}" if command_id else f"{job_id}@{fire_ms(scheduled_at)}"


@dataclass(frozen=True)
class RunRecord:
    """One ledger entry: how one fire time of one job ended, or, for fire times decided
    together without running (missed or skipped after downtime), a counted range of them:
    ``count`` fire times from ``scheduled_at`` to ``until``, both included."""

    job_id: str
    scheduled_at: datetime
    status: Status
    runner: str
    epoch: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""
    error: str = ""
    duration_ms: float | None = None
    manual: str = ""  # the command id of a run-now; empty for scheduled fires
    count: int = 1
    until: datetime | None = None  # the last fire time of a range (count > 1)

    @property
    def fire_id(self) -> str:
        return fire_id(self.job_id, self.scheduled_at, self.manual)

    @property
    def last_scheduled_at(self) -> datetime:
        """The newest fire time this entry decides."""
        return self.until or self.scheduled_at

    def fields(self) -> dict[str, str]:
        return {
            "job_id": self.job_id,
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "status": self.status,
            "reason": self.reason,
            "duration_ms": "" if self.duration_ms is None else f"{self.duration_ms:.3f}",
            "runner": self.runner,
            "epoch": str(self.epoch),
            "error": self.error,
            "manual": self.manual,
            "count": "" if self.count == 1 else str(self.count),
            "until": iso(self.until),
        }

    def flat_fields(self) -> list[str]:
        """``[name, value, name, value, ...]`` as XADD takes them from a Lua script."""
        return [part for pair in self.fields().items() for part in pair]

    @classmethod
    def from_fields(cls, fields: Mapping[str, str] | Any) -> RunRecord:
        scheduled_at = parse_iso(fields["scheduled_at"])
        assert scheduled_at is not None
        duration = fields.get("duration_ms", "")
        return cls(
            job_id=fields["job_id"],
            scheduled_at=scheduled_at,
            status=Status(fields["status"]),
            runner=fields.get("runner", ""),
            epoch=int(fields.get("epoch") or 0),
            started_at=parse_iso(fields.get("started_at", "")),
            finished_at=parse_iso(fields.get("finished_at", "")),
            reason=fields.get("reason", ""),
            error=fields.get("error", ""),
            duration_ms=float(duration) if duration else None,
            manual=fields.get("manual", ""),
            count=int(fields.get("count") or 1),
            until=parse_iso(fields.get("until", "")),
        )


@dataclass(frozen=True)
class Claim:
    """Who claimed a fire time: stored in the inflight hash (and, for a run-now, its claim key)."""

    job_id: str
    scheduled_at: datetime
    runner: str
    epoch: int
    claimed_at: datetime
    manual: str = ""  # the command id of a run-now

    def to_json(self) -> str:
        return json.dumps(
            {
                "job_id": self.job_id,
                "scheduled_at": iso(self.scheduled_at),
                "runner": self.runner,
                "epoch": self.epoch,
                "claimed_at": iso(self.claimed_at),
                "manual": self.manual,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Claim:
        data = json.loads(text)
        return cls(
            job_id=data["job_id"],
            scheduled_at=datetime.fromisoformat(data["scheduled_at"]),
            runner=data["runner"],
            epoch=int(data["epoch"]),
            claimed_at=datetime.fromisoformat(data["claimed_at"]),
            manual=data.get("manual", ""),
        )

    @property
    def fire_id(self) -> str:
        return fire_id(self.job_id, self.scheduled_at, self.manual)


# -- the entries, one constructor per way a fire time ends ----------------------------------


def not_run(
    job_id: str,
    times: list[datetime],
    status: Status,
    reason: str,
    *,
    runner: str,
    epoch: int,
    now: datetime,
) -> tuple[Claim, RunRecord]:
    """Fire times decided without running (missed, skipped): one entry, a counted range when
    there are several. (The claim names the entry's newest fire time.)"""
    first, last = times[0], times[-1]
    record = RunRecord(
        job_id,
        first,
        status,
        runner,
        epoch,
        finished_at=now,
        reason=reason,
        count=len(times),
        until=last if len(times) > 1 else None,
    )
    return Claim(job_id, last, runner, epoch, now), record


def refused(claim: Claim, max_instances: int) -> RunRecord:
    """A claimed fire refused because ``max_instances`` runs are going on across the cluster:
    written by the claim's own Lua call if it is refused."""
    return RunRecord(
        claim.job_id,
        claim.scheduled_at,
        Status.SKIPPED,
        claim.runner,
        claim.epoch,
        finished_at=claim.claimed_at,
        reason=refused_reason(max_instances),
        manual=claim.manual,
    )


def refused_reason(max_instances: int) -> str:
    return Reason.MAX_INSTANCES.detailed(f"({max_instances}) reached", sep=" ")


def ended(
    claim: Claim,
    *,
    started: datetime,
    began: float,
    status: Status,
    reason: str = "",
    error: str = "",
) -> RunRecord:
    """How a claimed run ended. ``began``: ``time.perf_counter()`` when its body was started
    (its duration); a run ``skipped`` here never started a body."""
    ran = status != Status.SKIPPED
    return RunRecord(
        job_id=claim.job_id,
        scheduled_at=claim.scheduled_at,
        status=status,
        runner=claim.runner,
        epoch=claim.epoch,
        started_at=started if ran else None,
        finished_at=utcnow(),
        reason=reason,
        error=error,
        duration_ms=(time.perf_counter() - began) * 1000 if ran else None,
        manual=claim.manual,
    )


def not_durable(claim: Claim, error: str) -> RunRecord:
    """A claimed fire whose claim too few replicas acknowledged (CLAIM_MIN_REPLICAS): its body
    never started."""
    return RunRecord(
        job_id=claim.job_id,
        scheduled_at=claim.scheduled_at,
        status=Status.FAILED,
        runner=claim.runner,
        epoch=claim.epoch,
        finished_at=utcnow(),
        reason=Reason.CLAIM_NOT_DURABLE,
        error=error,
        manual=claim.manual,
    )


def lost(claim: Claim, now: datetime) -> RunRecord:
    """A claimed run whose runner is gone without recording how it ended."""
    return RunRecord(
        job_id=claim.job_id,
        scheduled_at=claim.scheduled_at,
        status=Status.FAILED,
        runner=claim.runner,
        epoch=claim.epoch,
        started_at=claim.claimed_at,
        finished_at=now,
        reason=Reason.RUNNER_LOST,
        error=f"runner {claim.runner} stopped before recording how this run ended",
        manual=claim.manual,
    )


runs_logger = logging.getLogger("tickonce.runs")


def log_run(record: RunRecord) -> None:
    """One line per fire time, with everything an operator greps for."""
    level = logging.INFO if record.status == Status.SUCCEEDED else logging.WARNING
    duration = "" if record.duration_ms is None else f" duration_ms={record.duration_ms:.1f}"
    detail = f" reason={record.reason}" if record.reason else ""
    manual = " manual" if record.manual else ""
    fields = {key: value for key, value in record.fields().items() if value != ""}
    runs_logger.log(
        level,
        "run job=%s scheduled_at=%s status=%s%s%s runner=%s epoch=%d%s",
        record.job_id,
        record.scheduled_at.isoformat(),
        record.status,
        detail,
        duration,
        record.runner,
        record.epoch,
        manual,
        extra={"run": fields},  # structured, for LOG_FORMAT=json
    )


# The first writer of a claimed fire records it; anyone later (a runner finishing after a leader
# recorded it as lost, or the reverse) adds nothing. Counting it for the metrics is part of the
# same step, and so is giving back the run's slot when its body is over.
# KEYS: inflight, runs stream, counters, running. ARGV: fire id, max entries, slot member to
# release ('' to keep it), n, n counter/increment pairs, then the entry's field/value pairs.
_FINISH = """
if ARGV[3] ~= '' then
  redis.call('ZREM', KEYS[4], ARGV[3])
end
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return 0
end
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  redis.call('HINCRBYFLOAT', KEYS[3], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
redis.call('XADD', KEYS[2], 'MAXLEN', '=', ARGV[2], '*', unpack(ARGV, 5 + 2 * n))
return 1
"""


FINISH_BATCH = 100  # run ends recorded per round trip, at most

_Finishing = tuple[RunRecord, str, "asyncio.Future[bool]"]


class RunLedger:
    """Writes and reads the run ledger (client with ``decode_responses=True``)."""

    def __init__(self, client: aioredis.Redis, keys: Keys, max_entries: int) -> None:
        self._client = client
        self._keys = keys
        self._max_entries = max_entries
        self._finish = client.register_script(_FINISH)
        self._finishing: list[_Finishing] = []
        self._writer: asyncio.Task[None] | None = None

    async def finish(self, record: RunRecord, *, release_slot: str = "") -> bool:
        """Record how a claimed run ended (and give back ``release_slot``, if given). False if
        this fire was already recorded.

        Runs that end together are recorded together: one pipelined round trip for all the
        records waiting when the last one was sent (a burst of 1,000 ends is a few round trips,
        not 1,000 requests at once, each with a connection of its own).
        """
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._finishing.append((record, release_slot, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_finishing())
        return await done

    async def _write_finishing(self) -> None:
        while self._finishing:
            # Bounded: a burst's ends go as several pipelines, with the scheduler's own calls
            # (claims, lease renewal) served by Redis in between.
            batch, self._finishing = self._finishing[:FINISH_BATCH], self._finishing[FINISH_BATCH:]
            results: list[Any]
            try:
                if len(batch) == 1:  # one call
                    record, release_slot, _ = batch[0]
                    results = [await self._finish(*self._finish_args(record, release_slot))]
                else:
                    calls = [self._finish_args(record, slot) for record, slot, _ in batch]
                    queue = functools.partial(self._queue_finishes, calls)
                    results = await pipelined_scripts_async(self._client, queue, [self._finish])
            except Exception as exc:  # each caller gets it (and retries a Redis error)
                results = [exc] * len(batch)
            for (*_, done), result in zip(batch, results, strict=True):
                if done.done():  # its caller gave up waiting
                    continue
                if isinstance(result, BaseException):
                    done.set_exception(result)
                else:
                    done.set_result(bool(result))

    async def _queue_finishes(
        self, calls: list[tuple[list[Any], list[Any]]], pipe: Pipeline
    ) -> None:
        for keys, args in calls:
            evalsha(pipe, self._finish, keys, args)

    def _finish_args(self, record: RunRecord, release_slot: str) -> tuple[list[Any], list[Any]]:
        """The keys and arguments of the finish script for ``record``."""
        keys = [
            self._keys.inflight,
            self._keys.ledger(record.job_id),
            self._keys.counters,
            self._keys.running(record.job_id),
        ]
        args = [
            record.fire_id,
            self._max_entries,
            release_slot,
            *flat(run_increments(record)),
            *record.flat_fields(),
        ]
        return keys, args

    async def recent(self, job_id: str, limit: int) -> list[RunRecord]:
        """The newest ``limit`` entries of a job, newest first."""
        entries = await self._client.xrevrange(self._keys.ledger(job_id), count=limit)
        return [RunRecord.from_fields(fields) for _, fields in entries or []]

    async def inflight(self) -> list[Claim]:
        """Claimed fires whose ledger entry is not written yet."""
        raw = await self._client.hgetall(self._keys.inflight)
        return [Claim.from_json(text(value)) for value in raw.values()]

    async def record_lost(self, is_lost: Callable[[Claim], bool]) -> int:
        """Close claimed fires whose runner is gone as ``failed`` (reason ``runner_lost``).

        Without this, a runner killed between claim and record would leave its fire time
        without any ledger entry. Returns how many entries were written.
        """
        written = 0
        now = utcnow()
        for claim in await self.inflight():
            if not is_lost(claim):
                continue
            written += await self.finish(lost(claim, now))
        return written
