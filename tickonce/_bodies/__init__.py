"""Where job bodies run: worker processes the scheduler can stop, and that cannot stop it.

A body never runs in the scheduler's process: each runs alone in a worker process (like
Celery's prefork pool), so a body that blocks, holds the GIL or leaks cannot delay firing or
lease renewal, and every body, ``def`` or ``async def``, can be stopped.

- ``pool``: the worker processes (``BodyPool``, ``BodyRun``), forked from a fork server;
- ``worker``: what runs in each (``BodyRef``, ``BodyEnd``, ``BodyStopped``);
- ``forkserver``: imported first by the fork server.

This package imports nothing itself: the fork server imports ``forkserver`` first, and must
ignore SIGTERM before anything slow is imported.
"""
