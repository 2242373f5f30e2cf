"""A leadership term: the fencing epoch and how long this process may still act on it."""

from __future__ import annotations

from collections.abc import Callable

from tickonce._exceptions import NotLeaderError


class LeaderTerm:
    """Valid from acquisition until ``valid_until`` on a local monotonic clock, or ``end()``.

    ``valid_until`` is set from when a successful renewal was *sent* plus the ttl minus a
    margin, so the term always ends before the lease could expire in Redis.
    """

    def __init__(self, epoch: int, valid_until: float, clock: Callable[[], float]) -> None:
        self.epoch = epoch
        self.valid_until = valid_until
        self._clock = clock
        self._ended = False

    @property
    def active(self) -> bool:
        return not self._ended and self._clock() < self.valid_until

    def extend(self, valid_until: float) -> None:
        if not self._ended:
            self.valid_until = max(self.valid_until, valid_until)

    def end(self) -> None:
        self._ended = True

    def current_epoch(self) -> int | None:
        """The epoch while the term is active, else None."""
        return self.epoch if self.active else None

    def require(self) -> int:
        """The epoch for a job store write or a claim.

        :raises NotLeaderError: the term is over.
        """
        if not self.active:
            raise NotLeaderError(f"leadership term of epoch {self.epoch} is over")
        return self.epoch
