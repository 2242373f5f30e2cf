"""The scheduler side: a pool of worker processes running job bodies, one body each.

Workers are forked from a fork server (``multiprocessing``'s ``forkserver``: a clean process
with the job modules imported, not a copy of the scheduler's threads and locks), started on
demand up to ``size``, reused, and retired after a while idle. Stopping a body asks first
(SIGUSR1, see worker.py); a body that has not ended within the grace (a C call holding the
GIL, a swallowed cancellation) is killed with its worker, and the worker is replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from tickonce._bodies.worker import BodyEnd, BodyRef, from_micros, serve, to_micros
from tickonce._jobs.registry import RunContext

logger = logging.getLogger("tickonce.runs")

# Tries to start a worker while its fork server is being ended by a SIGTERM as it starts.
FORK_SERVER_STARTS = 20

# Imported once by the fork server, so every worker starts with them.
_PRELOAD = ["tickonce._bodies.forkserver", "tickonce._bodies.worker"]


@dataclass
class BodyRun:
    """One body submitted to the pool; ``ended`` resolves with its BodyEnd."""

    ref: BodyRef
    kwargs: dict[str, Any]
    context: RunContext
    ended: asyncio.Future[BodyEnd]
    worker: _Worker | None = None
    stop_reason: str = ""

    @property
    def done(self) -> bool:
        return self.ended.done()


@dataclass
class _Worker:
    number: int
    process: BaseProcess
    conn: Connection
    run: BodyRun | None = None
    kill_timer: asyncio.TimerHandle | None = None
    gone: bool = False
    idle_since: float = 0.0


class BodyPool:
    """Up to ``size`` worker processes, started on demand, each running one body at a time.

    :param stop_grace: how long a body may take to stop when asked before it is killed.
    """

    def __init__(
        self,
        size: int,
        *,
        stop_grace: float,
        preload: Iterable[str] = (),
        idle_seconds: float = 60.0,
    ) -> None:
        self._size = size
        self._stop_grace = stop_grace
        self._idle_seconds = idle_seconds
        self._context = multiprocessing.get_context("forkserver")
        # Takes effect when the fork server starts (once per process, at the first worker).
        self._context.set_forkserver_preload([*_PRELOAD, *preload])
        self._workers: list[_Worker] = []
        self._queue: deque[BodyRun] = deque()
        self._numbers = itertools.count(1)
        self._closed = False

    @property
    def processes(self) -> int:
        """Worker processes alive now."""
        return len(self._workers)

    def prestart(self) -> None:
        """Start the fork server and one worker now (on this, the main, thread: the fork
        server dies with the thread that started it), so the first body starts at once."""
        if not self._workers and not self._closed:
            self._spawn()

    def submit(self, ref: BodyRef, kwargs: Mapping[str, Any], context: RunContext) -> BodyRun:
        """Start a body now on an idle worker, or as soon as one is free."""
        loop = asyncio.get_running_loop()
        run = BodyRun(ref, dict(kwargs), context, loop.create_future())
        if self._closed:
            run.ended.set_result(BodyEnd("stopped", None, "shutting down"))
            return run
        self._queue.append(run)
        self._dispatch()
        return run

    def stop(self, run: BodyRun, reason: str) -> None:
        """Stop a body: a queued one never starts; a running one is asked to stop, then
        killed with its worker if it has not ended within the grace."""
        if run.done or run.stop_reason:
            return
        run.stop_reason = reason
        if run.worker is None:
            with contextlib.suppress(ValueError):
                self._queue.remove(run)
            run.ended.set_result(BodyEnd("stopped", None, f"stopped before it started: {reason}"))
            return
        worker = run.worker
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(worker.process.pid or 0, signal.SIGUSR1)
        loop = asyncio.get_running_loop()
        worker.kill_timer = loop.call_later(self._stop_grace, self._kill, worker)

    async def close(self) -> None:
        """Stop every body (they were given their grace by the caller) and every worker."""
        self._closed = True
        while self._queue:
            self.stop(self._queue[0], "shutting down")
        for worker in list(self._workers):
            if worker.run is not None:
                self.stop(worker.run, "shutting down")
        waiting = [w.run.ended for w in self._workers if w.run is not None]
        if waiting:
            await asyncio.wait(waiting, timeout=self._stop_grace + 2)
        for worker in list(self._workers):
            self._retire(worker)

    # -- internals -----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            worker = next((w for w in self._workers if w.run is None and not w.gone), None)
            if worker is None:
                if len(self._workers) >= self._size:
                    if self._harvest():
                        continue
                    return
                try:
                    worker = self._spawn()
                except OSError as exc:
                    logger.error("cannot start a worker process for job bodies: %s", exc)
                    return
            run = self._queue.popleft()
            try:
                context = run.context
                message = (  # plain values: pickling dataclasses costs more than the rest
                    run.ref.module,
                    run.ref.qualname,
                    run.kwargs,
                    context.job_id,
                    to_micros(context.scheduled_at),
                    context.epoch,
                    context.runner,
                )
                worker.conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))
            except (OSError, ValueError) as exc:  # died since its last body
                self._queue.appendleft(run)
                self._retire(worker)
                logger.warning("worker process %d was gone (%s)", worker.number, exc)
                continue
            worker.run, run.worker = run, worker
        self._reap_idle(loop.time())

    def _spawn(self) -> _Worker:
        parent, child = self._context.Pipe()
        number = next(self._numbers)
        for attempt in range(1, FORK_SERVER_STARTS + 1):
            process = self._context.Process(
                target=serve,
                args=(child, dict(os.environ), list(sys.path)),
                name=f"tickonce-body-{number}",
                daemon=True,
            )
            try:
                process.start()
                break
            except (EOFError, ConnectionRefusedError, BrokenPipeError, ConnectionResetError):
                # The fork server died as it started: a SIGTERM to the whole process group
                # before its first import made it ignore SIGTERM (forkserver.py). Talking to it
                # then ends in EOF, a broken pipe or a reset, depending on when it died; once
                # it has exited (refused until then), starting the worker starts a new one.
                if attempt == FORK_SERVER_STARTS:
                    raise
                time.sleep(0.05)
        child.close()
        worker = _Worker(number, process, parent)
        asyncio.get_running_loop().add_reader(parent.fileno(), self._on_message, worker)
        self._workers.append(worker)
        return worker

    def _harvest(self) -> bool:
        """Take in the ends of bodies that finished meanwhile, without waiting: while the loop
        is busy (a wakeup submitting many bodies) their messages would wait for it, and the
        bodies queued behind them with them. True if a worker became free."""
        busy = {w.conn: w for w in self._workers if w.run is not None and not w.gone}
        ready = wait(list(busy), timeout=0)
        for conn in ready:
            self._receive(busy[conn])  # type: ignore[index]
        return bool(ready)

    def _on_message(self, worker: _Worker) -> None:
        # The loop saw the pipe readable, but a harvest may have read the message since:
        # reading again would block the loop until the worker's next body ends.
        if worker.gone or not worker.conn.poll(0):
            return
        self._receive(worker)
        if not self._closed:
            self._dispatch()

    def _receive(self, worker: _Worker) -> None:
        """Read a worker's message, its body's end: the worker is free again (or gone)."""
        try:
            status, started, error = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            self._on_worker_death(worker)
            return
        end = BodyEnd(status, from_micros(started), error)
        run, worker.run = worker.run, None
        worker.idle_since = asyncio.get_running_loop().time()
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
            worker.kill_timer = None
        if run is not None and not run.done:
            run.ended.set_result(end)

    def _on_worker_death(self, worker: _Worker) -> None:
        run = worker.run
        self._retire(worker)
        if run is not None and not run.done:
            code = worker.process.exitcode
            if run.stop_reason:
                grace = self._stop_grace
                end = BodyEnd("stopped", None, f"killed: it did not stop within {grace:g}s")
            else:
                end = BodyEnd("crashed", None, f"its worker process died (exit code {code})")
            run.ended.set_result(end)

    def _kill(self, worker: _Worker) -> None:
        if not worker.gone:
            logger.warning(
                "job %s did not stop within %gs; killing its worker process",
                worker.run.context.job_id if worker.run else "?",
                self._stop_grace,
            )
            worker.process.kill()

    def _retire(self, worker: _Worker) -> None:
        if worker.gone:
            return
        worker.gone = True
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(worker.conn.fileno())
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
        if worker.process.is_alive():
            worker.process.kill()
        worker.conn.close()
        worker.process.join(timeout=1)
        self._workers.remove(worker)

    def _reap_idle(self, now: float) -> None:
        """Workers idle for long go (one stays), so processes follow real concurrency."""
        idle = [w for w in self._workers if w.run is None and not w.gone]
        for worker in idle[1:]:
            if now - worker.idle_since > self._idle_seconds:
                self._retire(worker)
