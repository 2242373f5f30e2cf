"""How a fire time ends: its ledger entry's status and reason.

The ledger stores both as text, their values (unchanged since the first release). A reason
may carry a detail after its code: ``max_instances (2) reached``, ``missed by 0.412s``,
``catch_up=all: more than 500 overdue at once``; ``Reason.of`` reads the code back.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Status(StrEnum):
    """How a fire time ended."""

    SUCCEEDED = "succeeded"  # its body ran and returned
    FAILED = "failed"  # its body ran, or was claimed to run, and did not succeed
    SKIPPED = "skipped"  # decided not to run (overlap, catch-up policy, unknown task)
    MISSED = "missed"  # decided too late to run: past its misfire grace time


class Reason(StrEnum):
    """Why a fire time did not succeed; the ledger's ``reason``, empty for a success."""

    # failed
    EXCEPTION = "exception"  # the body raised
    TIMEOUT = "timeout"  # the job's timeout stopped the body
    CANCELLED = "cancelled"  # the body was stopped: its runner shut down
    CRASHED = "crashed"  # the body's worker process died
    SLOT_LOST = "slot_lost"  # its running slot could no longer be proven held
    RUNNER_LOST = "runner_lost"  # its runner stopped without recording how it ended
    CLAIM_NOT_DURABLE = "claim_not_durable"  # too few replicas acknowledged the claim
    # skipped
    MAX_INSTANCES = "max_instances"  # max_instances runs were going on across the cluster
    UNKNOWN_TASK = "unknown_task"  # the runner's code does not define the job's task
    COALESCED = "coalesced"  # overdue with a newer fire time: only the newest runs
    CATCH_UP = "catch_up"  # overdue, and the job's catch-up policy does not run it
    # missed
    MISSED = "missed"  # past its misfire grace time when decided

    def detailed(self, detail: str, sep: str = ": ") -> str:
        """The reason as stored, with a detail after its code."""
        return f"{self}{sep}{detail}"

    @classmethod
    def of(cls, stored: str) -> Reason | None:
        """The code of a stored reason (None for none, or one this version does not know)."""
        match = re.match(r"[a-z_]+", stored)
        try:
            return cls(match.group(0)) if match else None
        except ValueError:
            return None
