"""Commands to the leader: the API sends each change through Redis and waits for the outcome.

A command is never applied twice and never silently lost:
- it waits in a Redis Stream read by a consumer group that only the current leader reads;
- its outcome key is taken with SET NX: by the leader when it starts applying (``applying``),
  or by the sender when it gives up waiting (``expired``). Whoever is first decides, so a
  command the API reported as not applied can never be applied later;
- a leader that dies mid-command leaves the stream entry pending; the next leader claims it
  (XAUTOCLAIM) and applies it again, which is safe because every operation is idempotent
  (a run-now is claimed by its command id, so it runs at most once);
- commands apply in the order they were sent: pending entries (older than anything unread)
  are settled first, at once, and a command that could not be settled (Redis failed) stops
  the pass, so nothing newer overtakes it.

Every contender that led once is a consumer of the group; the leader deletes those that are
gone (and have nothing pending) about every 30 s, so the group does not grow with every start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ValidationError

from tickonce._exceptions import LeaderUnavailable
from tickonce._firing.record import utcnow
from tickonce._leadership.membership import live_members
from tickonce._storage.clients import REDIS_TROUBLE
from tickonce._storage.keys import Keys

logger = logging.getLogger("tickonce.commands")

Op = Literal["pause", "resume", "run", "update", "create", "delete"]
OUTCOME_TTL_SECONDS = 3600
STREAM_MAX_ENTRIES = 10_000
# A command older than its deadline by this much is dropped unread (its outcome key is gone).
STALE_AFTER = timedelta(minutes=10)
# How often, at most, the leader deletes the group's consumers that are gone.
PRUNE_SECONDS = 30.0
# Every contender still in the member list counts as live: each heartbeat drops those silent
# for longer than the member window, so no window of our own is needed here.
_LISTED = 2**62


class Command(BaseModel):
    id: str
    op: Op
    job_id: str
    payload: dict[str, Any] = {}
    created_at: datetime
    deadline: datetime


class Outcome(BaseModel):
    """How a command ended; ``code`` is the HTTP status the API answers with."""

    status: Literal["applying", "done", "expired"]
    code: int = 200
    detail: str = ""
    job: dict[str, Any] | None = None
    applied_by: str = ""


class CommandSender:
    """The API's side: send a command and wait for its outcome."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys

    async def send(
        self, op: Op, job_id: str, payload: dict[str, Any] | None = None, *, timeout: float
    ) -> Outcome:
        """Apply ``op`` through the leader; the outcome, or LeaderUnavailable after ``timeout``."""
        now = utcnow()
        command = Command(
            id=uuid.uuid4().hex,
            op=op,
            job_id=job_id,
            payload=payload or {},
            created_at=now,
            deadline=now + timedelta(seconds=timeout),
        )
        keys = self._keys.of_job(job_id)  # the leader of the job's shard applies it
        await self._client.xadd(
            keys.commands,
            {"command": command.model_dump_json()},
            maxlen=STREAM_MAX_ENTRIES,
            approximate=True,
        )
        outcome = await self._wait(keys, command.id, timeout)
        if outcome is not None:
            return outcome
        expired = Outcome(status="expired").model_dump_json()
        if await self._client.set(
            keys.command_outcome(command.id), expired, nx=True, ex=OUTCOME_TTL_SECONDS
        ):
            leader = "leader" if keys.shards == 1 else f"leader of shard {keys.shard}"
            raise LeaderUnavailable(
                f"no scheduler {leader} answered within {timeout:g}s, so the change was not "
                "applied; check GET /scheduler and try again"
            )
        # A leader took it just now: give it a moment to finish.
        outcome = await self._wait(keys, command.id, 2.0)
        if outcome is not None:
            return outcome
        raise LeaderUnavailable(
            "the leader took the change but did not confirm it in time; check the job's state"
        )

    async def _wait(self, keys: Keys, command_id: str, timeout: float) -> Outcome | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = keys.command_reply(command_id)
        while (left := deadline - loop.time()) > 0:
            # Short blocking slices: the client's socket timeout bounds each call.
            reply = await self._client.blpop([key], timeout=min(left, 0.5))
            if reply is not None:
                return Outcome.model_validate_json(reply[1])
        return None


Apply = Callable[[Command], Outcome]
Entries = tuple[str, list[tuple[str, dict[str, str]]]]

# Delete consumers of the group that have nothing pending, checked in the same step:
# XGROUP DELCONSUMER drops a consumer's pending entries unacknowledged, so a consumer that
# read something since it was listed is kept (its entries stay for XAUTOCLAIM).
# KEYS: commands stream. ARGV: group, consumer names. Returns the names deleted.
_PRUNE = """
local deleted = {}
for i = 2, #ARGV do
  if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[i]) == 0 then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[i])
    table.insert(deleted, ARGV[i])
  end
end
return deleted
"""


class CommandConsumer:
    """The leader's side: read commands, apply each once, answer its sender."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        runner_id: str,
        apply: Apply,
        *,
        block_ms: int,
        prune_seconds: float = PRUNE_SECONDS,
    ) -> None:
        self._client = client
        self._keys = keys
        self._runner_id = runner_id
        self._apply = apply
        self._block_ms = block_ms
        self._prune_seconds = prune_seconds
        self._next_prune: float | None = None  # loop time; None: at the first pass
        self._prune = client.register_script(_PRUNE)

    async def run(self) -> None:
        """Serve commands until cancelled (when this process stops leading)."""
        await self._ensure_group()
        while True:
            # First what a leader that died took but never finished, then what is new. Only
            # the leader reads, and a deposed one can no longer write the job store: nothing
            # pending is in anyone else's hands, so it is taken however briefly it was idle.
            reclaimed: list[Any] = await self._client.xautoclaim(
                self._keys.commands,
                self._keys.command_group,
                self._runner_id,
                min_idle_time=0,
                start_id="0-0",
                count=50,
            )
            stranded: list[tuple[str, dict[str, str]]] = reclaimed[1]
            for entry_id, fields in stranded:
                await self._handle(entry_id, fields)
            await self._prune_now_and_then()
            batches: list[Entries] | None = await self._client.xreadgroup(  # type: ignore[assignment]
                self._keys.command_group,
                self._runner_id,
                {self._keys.commands: ">"},
                count=20,
                block=self._block_ms,
            )
            for _, entries in batches or []:
                for entry_id, fields in entries:
                    await self._handle(entry_id, fields)

    async def _prune_now_and_then(self) -> None:
        """At most every ``prune_seconds``: delete the group's consumers that are gone. A
        failure is logged; it never stops the commands."""
        now = asyncio.get_running_loop().time()
        if self._next_prune is not None and now < self._next_prune:
            return
        self._next_prune = now + self._prune_seconds
        try:
            await self.prune_consumers()
        except REDIS_TROUBLE as exc:
            logger.warning("could not delete the command group's gone consumers (%s)", exc)

    async def prune_consumers(self) -> list[str]:
        """Delete the group's consumers that are neither this one nor a live contender and have
        nothing pending (the stranded entries of a dead leader are claimed before this runs).
        Returns their names."""
        live = {
            member.runner_id for member in await live_members(self._client, self._keys, _LISTED)
        }
        consumers: list[dict[str, Any]] = await self._client.xinfo_consumers(
            self._keys.commands, self._keys.command_group
        )
        gone = [
            consumer["name"]
            for consumer in consumers
            if consumer["name"] != self._runner_id
            and consumer["name"] not in live
            and int(consumer["pending"]) == 0
        ]
        if not gone:
            return []
        deleted: list[str] = await self._prune(
            keys=[self._keys.commands], args=[self._keys.command_group, *gone]
        )
        if deleted:
            logger.info(
                "deleted %d consumer(s) of contenders that are gone from the command group",
                len(deleted),
            )
        return deleted

    async def _ensure_group(self) -> None:
        # From the stream's start, not "$": a command sent before the first leader made the
        # group (a fresh deployment, an API faster than the scheduler) is applied, not skipped.
        # Older entries are acknowledged unapplied once past their deadline (see _handle),
        # and a command is applied at most once (its outcome key), so nothing runs twice.
        try:
            await self._client.xgroup_create(
                self._keys.commands, self._keys.command_group, id="0", mkstream=True
            )
        except aioredis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, entry_id: str, fields: dict[str, str]) -> None:
        try:
            command = Command.model_validate_json(fields.get("command", ""))
        except ValidationError:
            logger.error("dropping unreadable command %s: %r", entry_id, fields)
            await self._ack(entry_id)
            return
        if utcnow() > command.deadline + STALE_AFTER:
            await self._ack(entry_id)
            return
        key = self._keys.command_outcome(command.id)
        applying = Outcome(status="applying", applied_by=self._runner_id).model_dump_json()
        if not await self._client.set(key, applying, nx=True, ex=OUTCOME_TTL_SECONDS):
            previous = Outcome.model_validate_json(await self._client.get(key) or applying)
            if previous.status == "expired":  # its sender gave up: it must never apply
                await self._ack(entry_id)
                return
            if previous.status == "done":  # applied already; answer again in case
                await self._answer(command, previous, entry_id)
                return
            # "applying": the leader before died while applying it; operations are idempotent.
        # In a thread: applying writes the job store (and waits for a wakeup in progress), and
        # the loop this runs on renews the lease.
        outcome = await asyncio.to_thread(self._apply, command)
        logger.info(
            "command %s %s %s: %d %s",
            command.id,
            command.op,
            command.job_id,
            outcome.code,
            outcome.detail or "ok",
        )
        await self._answer(
            command, outcome.model_copy(update={"applied_by": self._runner_id}), entry_id
        )

    async def _answer(self, command: Command, outcome: Outcome, entry_id: str) -> None:
        reply = self._keys.command_reply(command.id)
        async with self._client.pipeline(transaction=True) as pipe:
            pipe.set(
                self._keys.command_outcome(command.id),
                outcome.model_dump_json(),
                ex=OUTCOME_TTL_SECONDS,
            )
            pipe.rpush(reply, outcome.model_dump_json())
            pipe.expire(reply, 60)
            pipe.xack(self._keys.commands, self._keys.command_group, entry_id)
            await pipe.execute()

    async def _ack(self, entry_id: str) -> None:
        await self._client.xack(self._keys.commands, self._keys.command_group, entry_id)
