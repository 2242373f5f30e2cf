"""Hearing that a web server is stopping before it ends the app's lifespan.

uvicorn (also under gunicorn's ``UvicornWorker``) stops on SIGTERM or SIGINT only once the
requests in progress are answered, and ends the app's lifespan after that: seconds, or up to
gunicorn's ``graceful_timeout``. A contender embedded in that worker must stop taking leases
from the signal on, not from the lifespan's end: leading meanwhile, it would fire, hand over
again moments later, and leave bodies running past its own end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def on_stop_signals(callback: Callable[[], None]) -> Iterator[None]:
    """While in the block, call ``callback`` when SIGTERM or SIGINT arrives, then the handler
    the server installed; the server's handlers are put back after (where still ours).

    Only where signals are handled: in the main thread, and only for a signal the server
    catches (a default or ignored one is left alone: the process ends, or goes on, as it
    would). ``callback`` runs in the signal handler: it may set a flag or hand work to a loop
    with ``call_soon_threadsafe``, nothing more.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    installed: dict[signal.Signals, tuple[Any, Any]] = {}
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if not callable(previous):
            continue

        def handler(number: int, frame: FrameType | None, server: Any = previous) -> None:
            callback()
            server(number, frame)

        signal.signal(signum, handler)
        installed[signum] = (handler, previous)
    try:
        yield
    finally:
        for signum, (handler, previous) in installed.items():
            if signal.getsignal(signum) is handler:
                signal.signal(signum, previous)
