"""Imported first by the fork server the body workers are forked from (see pool.py), and
by nothing else: it makes that server outlive a SIGTERM sent to the scheduler's whole process
group (systemd, ``kill -TERM -pgid``) so running bodies can finish within the shutdown grace,
and die with the scheduler however the scheduler ends, taking every worker with it."""

from __future__ import annotations

import signal

from services.core.bodies.worker import die_with_parent, mark_body_process

signal.signal(signal.SIGTERM, signal.SIG_IGN)
die_with_parent()
mark_body_process()
