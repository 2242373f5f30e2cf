"""Durable writes: ``CLAIM_MIN_REPLICAS`` replicas acknowledge a claim (and a new leader's
fencing epoch) before it counts.

Redis replicates asynchronously: a primary that dies right after acknowledging a write can take
it along, and a promoted replica then has never seen it. For a claim, that is a fire time that
can run twice; for an epoch, one that can go back and admit a deposed leader again. ``WAIT``
sent on the same connection right after the write blocks until that many replicas have it (or
the timeout passes) and says how many do. A claim short of them does not run its body (the
fire is recorded ``failed: claim_not_durable``); an epoch short of them is not led with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Durability:
    """``replicas`` acknowledgements within ``timeout_ms`` (0 replicas: no waiting at all)."""

    replicas: int = 0
    timeout_ms: int = 0

    @property
    def wanted(self) -> bool:
        return self.replicas > 0

    def queue(self, pipe: Any) -> None:
        """Add the wait to ``pipe`` (after the writes it must cover; its answer comes last)."""
        if self.wanted:
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)

    def held(self, acknowledged: int) -> bool:
        return acknowledged >= self.replicas

    def shortfall(self, acknowledged: int) -> str:
        return (
            f"acknowledged by {acknowledged} of the {self.replicas} replica(s) "
            f"CLAIM_MIN_REPLICAS requires within {self.timeout_ms} ms"
        )


NONE = Durability()  # CLAIM_MIN_REPLICAS=0: nothing is waited for
