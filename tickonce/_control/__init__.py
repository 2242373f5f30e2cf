"""Changes and reads from outside the leader: commands through Redis (``channel``), applied by
the leader (``apply``); stored jobs and ledgers read a page at a time (``reads``) and the
cluster-wide metrics (``metrics``).
"""
