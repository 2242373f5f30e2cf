"""The leader's APScheduler: an AsyncIOScheduler on the fenced Redis job store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC
from typing import Any

import redis
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from services.core.fencing import NotLeaderError

logger = logging.getLogger(__name__)


class LeaderScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler that survives job store errors and stops when it is no longer leader.

    In APScheduler 3.x an exception escaping ``_process_jobs`` (say, Redis failing while a job's
    next run time is written) ends its timer for good; here it schedules a retry instead.
    """

    def __init__(
        self,
        *,
        on_not_leader: Callable[[str], None],
        retry_seconds: float,
        after_wakeup: Callable[[], None] = lambda: None,
        **options: Any,
    ) -> None:
        options.setdefault("timezone", UTC)
        options.setdefault("jobstore_retry_interval", retry_seconds)
        super().__init__(**options)
        self._on_not_leader = on_not_leader
        self._after_wakeup = after_wakeup
        self._retry_seconds = retry_seconds

    def _process_jobs(self) -> float | None:
        if self.state == STATE_STOPPED:
            return None  # a wakeup queued before the shutdown: this scheduler is done
        try:
            wait: float | None = super()._process_jobs()
        except NotLeaderError as exc:
            self._on_not_leader(str(exc))
            return None
        except redis.RedisError as exc:
            logger.warning(
                "job store unavailable (%s); retrying in %.1fs", exc, self._retry_seconds
            )
            return self._retry_seconds
        except Exception:
            logger.exception("processing due jobs failed; retrying in %.1fs", self._retry_seconds)
            return self._retry_seconds
        finally:
            with self._jobstores_lock:  # no job change lands between the wakeup and this
                self._after_wakeup()
        return wait
