"""Every Redis key tickonce reads or writes, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix (``KEY_PREFIX``), so several deployments can share a Redis."""

    prefix: str

    @property
    def lease(self) -> str:
        """String: the leader's token, with the lease ttl as its expiry."""
        return f"{self.prefix}lease"

    @property
    def epoch(self) -> str:
        """Integer: the fencing epoch, incremented on every lease acquisition."""
        return f"{self.prefix}epoch"

    @property
    def members(self) -> str:
        """Sorted set: contender id -> last heartbeat (Redis server time, ms)."""
        return f"{self.prefix}members"

    @property
    def member_info(self) -> str:
        """Hash: contender id -> JSON with its role, mode and start time."""
        return f"{self.prefix}members:info"

    def member_jobs(self, member_id: str) -> str:
        """Hash: job id -> definition fingerprint, of the jobs a live member's code defines
        (expires when the member stops beating), so a leader running other code keeps them."""
        return f"{self.prefix}members:jobs:{member_id}"

    @property
    def inflight(self) -> str:
        """Hash: claimed fire -> JSON claim, removed when the run's ledger entry is written."""
        return f"{self.prefix}inflight"

    @property
    def counters(self) -> str:
        """Hash: cluster-wide counters (refused claims, lease acquisitions, ...)."""
        return f"{self.prefix}counters"

    @property
    def decided(self) -> str:
        """Hash: job id -> ``"<ms> <plan id> <verdicts>"``: the newest fire time of the job
        that was decided (claimed to run, or recorded as not run), and the last fire plan
        applied with its answer. Fire times at or before the mark are never decided again,
        whatever restarts or syncs happen; a retried plan gets its first answer back."""
        return f"{self.prefix}decided"

    @property
    def definitions(self) -> str:
        """Hash: job id -> fingerprint of its definition in code, as last synced."""
        return f"{self.prefix}definitions"

    @property
    def jobs(self) -> str:
        """APScheduler's RedisJobStore hash of pickled jobs."""
        return f"{self.prefix}jobs"

    @property
    def run_times(self) -> str:
        """APScheduler's RedisJobStore sorted set of next run times."""
        return f"{self.prefix}run_times"

    @property
    def commands(self) -> str:
        """Stream of control commands sent to the leader."""
        return f"{self.prefix}commands"

    @property
    def command_group(self) -> str:
        """Consumer group of the commands stream: only the leader reads it."""
        return "leader"

    def command_outcome(self, command_id: str) -> str:
        """String: a command's outcome (reserved by its applier, or expired by its sender)."""
        return f"{self.prefix}command:{command_id}"

    def command_reply(self, command_id: str) -> str:
        """List: where the sender of a command waits for its outcome."""
        return f"{self.prefix}command:{command_id}:reply"

    def manual_claim(self, job_id: str, command_id: str) -> str:
        """String: the claim of a run-now command, so it runs at most once (expires)."""
        return f"{self.prefix}claim:{job_id}:manual:{command_id}"

    def running(self, job_id: str) -> str:
        """Sorted set: running slots of a job (member -> expiry, Redis ms); the cluster-wide
        count that max_instances limits."""
        return f"{self.prefix}running:{job_id}"

    def runs(self, job_id: str) -> str:
        """Stream: the run ledger of one job, capped."""
        return f"{self.prefix}runs:{job_id}"

    def example(self, name: str) -> str:
        """Keys written by the shipped example jobs (e.g. the heartbeat's beats)."""
        return f"{self.prefix}examples:{name}"
