"""Every setting tickonce reads, from environment variables, in one class."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Annotated, Literal, NoReturn

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

DEFAULT_JOBS_MODULES = ["services.jobs.examples"]


class Settings(BaseSettings):
    """Configuration of both services. Each field is read from the upper-cased env variable."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis holding the job store, lease, claims and ledger.",
    )
    key_prefix: str = Field("tickonce:", description="Prefix of every Redis key tickonce uses.")
    scheduler_mode: Literal["off", "embedded"] = Field(
        "off", description="`embedded`: every API worker also contends for leadership."
    )
    lease_ttl_seconds: float = Field(5.0, gt=0, description="Leader lease time to live.")
    jobs_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(DEFAULT_JOBS_MODULES),
        description="Comma-separated modules whose @job functions are registered at start.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    ledger_max_entries: int = Field(1000, ge=1, description="Run ledger entries kept per job.")
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running jobs may take to finish."
    )
    claim_ttl_seconds: float = Field(
        600.0, gt=0, description="How long a fire-time claim is remembered (at least)."
    )
    job_threads: int = Field(32, ge=1, description="Threads that run job bodies.")
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Redis socket timeout (API requests; the scheduler uses less)."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token that allows changes through the API; unset = refused."
    )
    api_read_token_required: bool = Field(False, description="Require the token for reads too.")
    command_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="How long the API waits for the leader to apply a change."
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON per line.")
    port: int = Field(8000, ge=1, le=65535, description="API: port gunicorn listens on.")
    web_concurrency: int = Field(2, ge=1, description="API: gunicorn worker processes.")
    forwarded_allow_ips: str = Field(
        "*", description="API: proxies trusted for X-Forwarded-* headers (the load balancer)."
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        try:
            parsed = parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(f"not a Redis URL ({exc})") from None
        if value.startswith(("redis://", "rediss://")) and not parsed.get("host"):
            raise ValueError("a redis:// URL needs a host, e.g. redis://localhost:6379/0")
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("must be non-empty and contain no whitespace")
        return value

    @field_validator("api_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if isinstance(value, str) and len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("jobs_modules", mode="before")
    @classmethod
    def _split_modules(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @property
    def lease_ttl_ms(self) -> int:
        return max(1, int(self.lease_ttl_seconds * 1000))

    @property
    def renew_interval(self) -> float:
        """The leader renews three times per ttl."""
        return self.lease_ttl_seconds / 3

    @property
    def fence_margin(self) -> float:
        """A leader stops firing this long before its lease could expire elsewhere."""
        return self.lease_ttl_seconds / 5

    @property
    def standby_retry_interval(self) -> float:
        """Standbys try to take the lease ten times per ttl."""
        return self.lease_ttl_seconds / 10

    @property
    def member_window_seconds(self) -> float:
        """A contender not heard from for this long is no longer a live member."""
        return self.lease_ttl_seconds * 3

    @property
    def contender_redis_timeout(self) -> float:
        """The contender's calls: a renewal must not hang past the next one."""
        return min(self.redis_timeout_seconds, self.renew_interval)

    @property
    def firing_redis_timeout(self) -> float:
        """Calls made while firing block the event loop: short against the ttl, so a silent
        Redis cannot stall fencing."""
        return max(0.05, min(self.redis_timeout_seconds, self.lease_ttl_seconds / 10))

    @property
    def redacted_redis_url(self) -> str:
        """The Redis URL without its password, for messages."""
        parsed = parse_url(self.redis_url)  # type: ignore[no-untyped-call]
        if parsed.get("password") and (host := parsed.get("host")):
            scheme = self.redis_url.split("://", 1)[0]
            return f"{scheme}://***@{host}:{parsed.get('port', 6379)}/{parsed.get('db', 0)}"
        return self.redis_url


class ConfigError(Exception):
    """A setting that cannot be used; the message names it and says what is wrong."""


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad setting by its environment variable."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        shown = "<hidden>" if name == "API_TOKEN" else repr(item.get("input"))
        parts.append(f"{name}={shown}: {message}")
    return "invalid setting " + "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once. Raises ConfigError naming any bad variable."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def exit_with_config_error(error: Exception, code: int = 2) -> NoReturn:
    """Stop the process at start with one clear line instead of a traceback."""
    print(f"tickonce: {error}", file=sys.stderr, flush=True)
    raise SystemExit(code)
