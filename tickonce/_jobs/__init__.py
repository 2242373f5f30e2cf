"""Jobs: defined in code (``registry``: ``@job`` and ``current_run``), the one callable every
stored job references (``tasks``), their run policy (``policy``), schedules as data
(``schedules``), the store kept in line with the code (``sync``) and forgetting a job that is
gone (``retention``).
"""
