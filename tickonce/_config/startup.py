"""What both services do at start: read settings, set up logging, register jobs."""

from __future__ import annotations

from tickonce._config.logs import configure_logging
from tickonce._config.settings import Settings, exit_with_config_error, get_settings
from tickonce._exceptions import ConfigError, JobsModuleError
from tickonce._jobs.registry import load_job_modules


def prepare(exit_code: int = 2) -> Settings:
    """Settings, logging and job modules, or exit with one line naming what is wrong."""
    try:
        settings = get_settings()
    except ConfigError as exc:
        exit_with_config_error(exc, exit_code)
    configure_logging(settings)
    try:
        load_job_modules(settings.jobs_modules)
    except JobsModuleError as exc:
        exit_with_config_error(exc, exit_code)
    return settings
