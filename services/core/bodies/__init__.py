"""Where job bodies run: worker processes the scheduler can stop, and that cannot stop it.

A body never runs in the scheduler's process: each runs alone in a worker process (like
Celery's prefork pool), so a body that blocks, holds the GIL or leaks cannot delay firing or
lease renewal, and every body, ``def`` or ``async def``, can be stopped.
"""

from services.core.bodies.pool import BodyPool, BodyRun
from services.core.bodies.worker import BodyEnd, BodyRef, BodyStopped

__all__ = ["BodyEnd", "BodyPool", "BodyRef", "BodyRun", "BodyStopped"]
