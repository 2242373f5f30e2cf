"""Imported first by the fork server the body workers are forked from (see pool.py), and
by nothing else: it makes that server outlive a SIGTERM sent to the scheduler's whole process
group (systemd, ``kill -TERM -pgid``) so running bodies can finish within the shutdown grace,
and die with the scheduler however the scheduler ends, taking every worker with it."""

from __future__ import annotations

import signal

# First: the imports below (and the job modules preloaded after this one) take a while, and a
# SIGTERM meanwhile would end the server before it forked its first worker (pool.py starts it
# again if one came even before this line).
signal.signal(signal.SIGTERM, signal.SIG_IGN)

from tickonce._bodies.worker import die_with_parent, mark_body_process  # noqa: E402

die_with_parent()
mark_body_process()
