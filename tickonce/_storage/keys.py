"""Every Redis key tickonce reads or writes, in one place.

With ``SCHEDULER_SHARDS=N`` every job belongs to one shard (``shard_of``: a stable hash of its
id), and each shard has its own lease, epoch, job store, claims, command stream and counters.
The keys of one shard carry a hash tag (``{s3}``) so that one shard's keys share one Redis
Cluster slot (its Lua scripts touch several at once) while the shards spread over the nodes.
Keys of the whole deployment (members, the layout) live in shard 0's slot. One shard without
Redis Cluster keeps the untagged names of earlier versions, so an upgrade finds its data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tickonce._config.settings import Settings


def shard_of(job_id: str, shards: int) -> int:
    """The shard a job belongs to: the same for a job id in every process and version.

    A cryptographic hash, not CRC-32: CRC is linear, so ids that differ in a few bits (say
    ``report-0`` to ``report-3``) can all land in one shard of a power-of-two count.
    """
    if shards == 1:
        return 0
    digest = hashlib.blake2b(job_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``KEY_PREFIX``), so several deployments can share a Redis.

    An instance addresses one shard (``shard``); per-job keys always land in the job's own
    shard, whichever instance names them.
    """

    prefix: str
    shards: int = 1
    shard: int = 0
    tagged: bool = False  # hash-tagged names: several shards, or Redis Cluster

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        """Shard 0's keys of the deployment ``settings`` describe."""
        shards = settings.scheduler_shards
        return cls(settings.key_prefix, shards, 0, shards > 1 or settings.redis_cluster)

    def in_shard(self, shard: int) -> Keys:
        if not 0 <= shard < self.shards:
            raise ValueError(f"shard {shard} is not one of 0..{self.shards - 1}")
        return replace(self, shard=shard)

    def every_shard(self) -> list[Keys]:
        return [self.in_shard(shard) for shard in range(self.shards)]

    def of_job(self, job_id: str) -> Keys:
        """The keys of the shard ``job_id`` belongs to."""
        return self.in_shard(shard_of(job_id, self.shards))

    def owns(self, job_id: str) -> bool:
        """Whether ``job_id`` belongs to this shard."""
        return shard_of(job_id, self.shards) == self.shard

    def _space(self, shard: int) -> str:
        return f"{self.prefix}{{s{shard}}}:" if self.tagged else self.prefix

    @property
    def _here(self) -> str:
        return self._space(self.shard)

    def _job_space(self, job_id: str) -> str:
        return self._space(shard_of(job_id, self.shards))

    # -- the whole deployment (shard 0's slot) ------------------------------------------------

    @property
    def layout(self) -> str:
        """String: the shard count the deployment's data was laid out for (untagged, the same
        name whatever the layout, so any layout finds it)."""
        return f"{self.prefix}shards"

    @property
    def storage_format(self) -> str:
        """String: the format version of the deployment's data (``layout.STORAGE_FORMAT``;
        untagged, like ``layout``). Absent in data written before 0.3.0, which is format 1."""
        return f"{self.prefix}format"

    @property
    def members(self) -> str:
        """Sorted set: runner id -> last heartbeat (Redis server time, ms)."""
        return f"{self._space(0)}members"

    @property
    def member_info(self) -> str:
        """Hash: runner id -> JSON with its role, mode, led shards and start time."""
        return f"{self._space(0)}members:info"

    def member_jobs(self, runner_id: str) -> str:
        """Hash: job id -> definition fingerprint, of the jobs a live member's code defines
        (expires when the member stops beating), so a leader running other code keeps them."""
        return f"{self._space(0)}members:jobs:{runner_id}"

    def example(self, name: str) -> str:
        """Keys written by the shipped example jobs (e.g. the heartbeat's beats)."""
        return f"{self._space(0)}examples:{name}"

    # -- one shard ----------------------------------------------------------------------------

    @property
    def lease(self) -> str:
        """String: the shard leader's token, with the lease ttl as its expiry."""
        return f"{self._here}lease"

    @property
    def epoch(self) -> str:
        """Integer: the shard's fencing epoch, incremented on every lease acquisition."""
        return f"{self._here}epoch"

    @property
    def inflight(self) -> str:
        """Hash: claimed fire -> JSON claim, removed when the run's ledger entry is written."""
        return f"{self._here}inflight"

    @property
    def counters(self) -> str:
        """Hash: the shard's counters (refused claims, lease acquisitions, ...)."""
        return f"{self._here}counters"

    @property
    def decided(self) -> str:
        """Hash: job id -> ``"<ms> <plan id> <verdicts>"``: the newest fire time of the job
        that was decided (claimed to run, or recorded as not run), and the last fire plan
        applied with its answer. Fire times at or before the mark are never decided again,
        whatever restarts or syncs happen; a retried plan gets its first answer back."""
        return f"{self._here}decided"

    @property
    def definitions(self) -> str:
        """Hash: job id -> fingerprint of its definition in code, as last synced."""
        return f"{self._here}definitions"

    @property
    def retired(self) -> str:
        """Hash: job id -> JSON of a job no live code defines, kept aside (not firing) for
        ``DELETED_JOB_HISTORY_SECONDS`` until code defines it again: ``since`` (ms), the
        ``fingerprint`` of its last definition, its stored ``state`` (base64 of the pickle;
        null for a one-off job that already left the schedule). Its decided mark stays."""
        return f"{self._here}retired"

    @property
    def jobs(self) -> str:
        """APScheduler's RedisJobStore hash of pickled jobs."""
        return f"{self._here}jobs"

    @property
    def run_times(self) -> str:
        """APScheduler's RedisJobStore sorted set of next run times."""
        return f"{self._here}run_times"

    @property
    def commands(self) -> str:
        """Stream of control commands sent to the shard's leader."""
        return f"{self._here}commands"

    @property
    def command_group(self) -> str:
        """Consumer group of a commands stream: only the shard's leader reads it."""
        return "leader"

    def command_outcome(self, command_id: str) -> str:
        """String: a command's outcome (reserved by its applier, or expired by its sender)."""
        return f"{self._here}command:{command_id}"

    def command_applied(self, command_id: str) -> str:
        """String: set, in the same step, by the job store write a command makes (expires with
        its outcome), so a command applied again after its answer was lost knows it applied."""
        return f"{self._here}command:{command_id}:applied"

    def command_reply(self, command_id: str) -> str:
        """List: where the sender of a command waits for its outcome."""
        return f"{self._here}command:{command_id}:reply"

    # -- one job (in its own shard) ------------------------------------------------------------

    def manual_claim(self, job_id: str, command_id: str) -> str:
        """String: the claim of a run-now command, so it runs at most once (expires)."""
        return f"{self._job_space(job_id)}claim:{job_id}:manual:{command_id}"

    def running(self, job_id: str) -> str:
        """Sorted set: running slots of a job (member -> expiry, Redis ms); the cluster-wide
        count that max_instances limits."""
        return f"{self._job_space(job_id)}running:{job_id}"

    def ledger(self, job_id: str) -> str:
        """Stream: the run ledger of one job, capped."""
        return f"{self._job_space(job_id)}runs:{job_id}"
