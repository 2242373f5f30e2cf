"""The worker side: a process that runs the job bodies it is sent, one at a time.

A ``def`` body runs on the worker's main thread, an ``async def`` body on its event loop.
SIGUSR1 stops the body running now: a sync body gets ``BodyStopped`` raised where it stands
(its ``finally`` blocks run), an async body's task is cancelled. Workers ignore SIGINT and
SIGTERM (their scheduler decides when they stop) and die with their fork server, which dies
with the scheduler (``PR_SET_PDEATHSIG``), so no body outlives the process that claimed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib
import inspect
import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any, Literal

from tickonce._config.logs import configure_logging
from tickonce._config.settings import get_settings
from tickonce._jobs.registry import RunContext, enter_run

logger = logging.getLogger("tickonce.runs")

Ending = Literal["succeeded", "failed", "stopped", "crashed"]


@dataclass(frozen=True)
class BodyRef:
    """A job body by import path, as a worker process finds it."""

    module: str
    qualname: str

    @classmethod
    def of(cls, func: Callable[..., Any]) -> BodyRef:
        return cls(func.__module__, func.__qualname__)

    def __str__(self) -> str:
        return f"{self.module}:{self.qualname}"


@dataclass(frozen=True)
class BodyEnd:
    """How a body ended: its status, when it really started (on the worker), the error."""

    status: Ending
    started_at: datetime | None
    error: str = ""


class BodyStopped(BaseException):
    """Raised inside a sync body that is being stopped (a BaseException, so that a body's
    ``except Exception`` does not swallow it)."""


_PR_SET_PDEATHSIG = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """A time as integer microseconds since the epoch: exact, and cheap to send."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def die_with_parent() -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_running_task: asyncio.Task[Any] | None = None
_running_sync = False
_body_process = False  # the fork server and the workers forked from it


def mark_body_process() -> None:
    """This process is the fork server (its workers inherit the mark)."""
    global _body_process
    _body_process = True


def in_body_process() -> bool:
    """Whether this is a process that runs job bodies (which import the job's module: a
    scheduler started at import time there must not contend)."""
    return _body_process


def _on_stop(signum: int, frame: object) -> None:
    if _running_task is not None:
        _running_task.get_loop().call_soon_threadsafe(_running_task.cancel)
    elif _running_sync:
        raise BodyStopped


def serve(conn: Connection, env: Mapping[str, str], path: list[str]) -> None:
    """A worker process: run the bodies it is sent, one at a time, until its pipe closes."""
    global _running_sync, _running_task
    die_with_parent()
    os.environ.clear()
    os.environ.update(env)
    get_settings.cache_clear()
    sys.path[:] = path
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGUSR1, _on_stop)
    _configure_logging()
    loop = asyncio.new_event_loop()
    bodies: dict[BodyRef, Callable[..., Any]] = {}
    while True:
        try:
            module, qualname, kwargs, job_id, scheduled_us, epoch, runner = pickle.loads(
                conn.recv_bytes()
            )
        except (EOFError, OSError):
            return
        except BodyStopped:  # a stop that arrived as the last body ended
            continue
        started = to_micros(datetime.now(UTC))
        status: Ending = "succeeded"
        error = ""
        ref = BodyRef(module, qualname)
        context = RunContext(job_id, from_micros(scheduled_us), epoch, runner)
        try:
            func = bodies.get(ref) or bodies.setdefault(ref, _import(ref))
            enter_run(context)
            if inspect.iscoroutinefunction(func):
                _running_task = loop.create_task(func(**kwargs))
                loop.run_until_complete(_running_task)
            else:
                _running_sync = True
                func(**kwargs)
        except (BodyStopped, asyncio.CancelledError):
            status, error = "stopped", "stopped"
        except BaseException as exc:
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            logger.error(
                "job %s raised an exception\n%s", context.job_id, traceback.format_exc().rstrip()
            )
        finally:
            _running_sync, _running_task = False, None
            _cancel_leftovers(loop)
            _flush_output()
        end = pickle.dumps((status, started, error), pickle.HIGHEST_PROTOCOL)
        try:
            conn.send_bytes(end)
        except BodyStopped:
            conn.send_bytes(end)
        except (BrokenPipeError, OSError):
            return


def _flush_output() -> None:
    """What the body printed reaches the log now: a worker's stdout is a pipe or a file,
    block-buffered, and a worker that is killed or retired later would lose it."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _import(ref: BodyRef) -> Callable[..., Any]:
    target: Any = importlib.import_module(ref.module)
    for part in ref.qualname.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{ref} is not callable")
    return target  # type: ignore[no-any-return]


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Tasks a body started and left running do not outlive it."""
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))


def _configure_logging() -> None:
    with contextlib.suppress(Exception):  # the scheduler validated the settings already
        configure_logging(get_settings())
