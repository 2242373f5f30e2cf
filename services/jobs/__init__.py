"""Jobs the containers ship (the compose stack's default JOBS_MODULES)."""
