"""Logging for both services: readable text lines, or one JSON object per line."""

from __future__ import annotations

import logging.config
from typing import Any

from tickonce._config.settings import Settings

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``dictConfig`` for the root logger and gunicorn's loggers (LOG_LEVEL, LOG_FORMAT)."""
    formatter: dict[str, Any] = {"format": TEXT_FORMAT}
    if settings.log_format == "json":
        formatter = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    handler = {"class": "logging.StreamHandler", "formatter": "main", "stream": "ext://sys.stdout"}
    quiet = {"level": settings.log_level, "handlers": ["stdout"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"stdout": handler},
        "root": {"level": settings.log_level, "handlers": ["stdout"]},
        "loggers": {"gunicorn.error": quiet, "gunicorn.access": {**quiet, "level": "INFO"}},
    }


def configure_logging(settings: Settings) -> None:
    logging.config.dictConfig(logging_config(settings))
