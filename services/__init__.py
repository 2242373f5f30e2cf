"""tickonce: exactly-once periodic jobs for scaled-out FastAPI services."""
