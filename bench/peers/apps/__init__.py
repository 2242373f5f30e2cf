"""The apps each peer system runs: tiny, one per system, importing only that system and redis
(each runs in the system's own virtualenv)."""
