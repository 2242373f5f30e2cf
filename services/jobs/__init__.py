"""Jobs shipped with tickonce (the default JOBS_MODULES)."""
