"""Firing: a fire's whole life, from due to recorded.

- ``decide``: which due fire times run, and how the others end (missed, skipped, coalesced);
- ``commit``: claims and the job's new state in one atomic step per job (no claim, no run);
- ``run``: bodies in worker processes, under running slots that count ``max_instances``;
- ``record``: the ledger entry each fire time ends as, and the run log line;
- ``path``: the fire path that takes a wakeup or a run-now through those steps;
- ``scheduler`` and ``jobstore``: APScheduler's scheduler and Redis job store, adapted (the
  timer and job changes stay APScheduler's; firing does not).
"""
