"""Every setting tickonce reads, from environment variables, in one class."""

from __future__ import annotations

import hmac
import sys
from functools import lru_cache
from typing import Annotated, Literal, NoReturn
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import URL_QUERY_ARGUMENT_PARSERS, parse_url

from tickonce._exceptions import ConfigError
from tickonce._storage.durability import Durability

DEFAULT_JOBS_MODULES: list[str] = []

REDACTED = "***"
# Query parameters of a Redis URL that are connection options, shown in messages. redis-py
# passes every other one (password, username, ssl_password, ...) to the connection: hidden.
_SHOWN_QUERY = frozenset(URL_QUERY_ARGUMENT_PARSERS)
_HIDDEN_SETTINGS = frozenset({"API_TOKEN", "API_READ_TOKEN"})


def _redaction(url: str) -> tuple[str, set[str]]:
    """``url`` as messages may show it, and the secrets it holds (raw and decoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket: show nothing but the scheme
        scheme = url.partition("://")[0] if "://" in url else ""
        return (f"{scheme}://{REDACTED}" if scheme else REDACTED), {url}
    secrets: set[str] = set()
    head = f"{parts.scheme}:" if parts.scheme else ""
    slashes = "//" if url[len(head) :].startswith("//") else ""
    netloc, path = parts.netloc, parts.path
    # Everything before the last "@" is user and password (urllib and redis-py split there);
    # without an authority (a malformed URL) the same holds for the path.
    if "@" in netloc:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{REDACTED}@{hostinfo}"
        for part in (userinfo, *userinfo.split(":", 1)):
            secrets.update((part, unquote(part)))
    elif "@" in path:
        userinfo, _, rest = path.rpartition("@")
        path = f"{REDACTED}@{rest}"
        secrets.update((userinfo, unquote(userinfo)))
    pairs = []
    for name, value in parse_qsl(parts.query):
        if name in _SHOWN_QUERY:
            pairs.append((name, value))
        else:
            pairs.append((name, REDACTED))
            secrets.add(value)
    secrets.update(
        raw.partition("=")[2]
        for raw in parts.query.split("&")
        if raw.partition("=")[0] not in _SHOWN_QUERY
    )
    query = f"?{urlencode(pairs, safe='*')}" if pairs else ""
    # The fragment is dropped: redis-py ignores it, and an unencoded "#" in a password
    # would put the password's tail there.
    if parts.fragment:
        secrets.add(parts.fragment)
    return f"{head}{slashes}{netloc}{path}{query}", {secret for secret in secrets if secret}


def redact_redis_url(url: str) -> str:
    """A Redis URL for messages: user and password (in the URL or its query) become ``***``;
    scheme, host, port, db, socket path and connection options stay readable."""
    return _redaction(url)[0]


class Settings(BaseSettings):
    """Configuration of both services. Each field is read from the upper-cased env variable."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    redis_sentinels: Annotated[list[tuple[str, int]], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Sentinel addresses (host:port). Set: the master is found "
        "through them, and REDIS_URL supplies only username, password, database and TLS.",
    )
    redis_sentinel_master: str = Field(
        "mymaster", min_length=1, description="The master's service name in the Sentinels."
    )
    redis_sentinel_password: SecretStr | None = Field(
        None, description="Password of the Sentinels themselves, when they require one."
    )
    redis_url: str = Field(
        "redis://localhost:6379/0",
        description="Redis holding the job store, lease, claims and ledger.",
    )
    key_prefix: str = Field("tickonce:", description="Prefix of every Redis key tickonce uses.")
    claim_min_replicas: int = Field(
        0,
        ge=0,
        le=16,
        description="Replicas that must acknowledge a fire's claim (and a new leader's epoch) "
        "before its body runs; 0: no waiting (Redis replicates asynchronously).",
    )
    redis_cluster: bool = Field(
        False,
        description="REDIS_URL names one node of a Redis Cluster; the client finds the rest.",
    )
    scheduler_shards: int = Field(
        1,
        ge=1,
        le=256,
        description="Shards the jobs are split into by a hash of their id, each led by one "
        "scheduler replica; replicas share them. The same on every service of a deployment.",
    )
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
    deleted_job_history_seconds: float = Field(
        7 * 24 * 3600.0,
        ge=0,
        description="How long the run ledger of a deleted job is kept (0: deleted with it).",
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running jobs may take to finish."
    )
    job_processes: int = Field(
        16, ge=1, le=1024, description="Worker processes that run job bodies (one body each)."
    )
    redis_timeout_seconds: float = Field(
        2.0, gt=0, description="Redis socket timeout (API requests; the scheduler uses less)."
    )
    api_token: SecretStr | None = Field(
        None, description="Bearer token that allows changes through the API; unset = refused."
    )
    api_read_token: SecretStr | None = Field(
        None,
        description="Bearer token that allows reads only; set = reads need it or API_TOKEN.",
    )
    api_read_token_required: bool = Field(
        False, description="Reads need a token (API_READ_TOKEN or API_TOKEN) even without one."
    )
    command_timeout_seconds: float = Field(
        5.0, gt=0, le=60, description="How long the API waits for the leader to apply a change."
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON per line.")
    port: int = Field(8000, ge=1, le=65535, description="API: port gunicorn listens on.")
    web_concurrency: int = Field(2, ge=1, description="API: gunicorn worker processes.")
    forwarded_allow_ips: str = Field(
        "*", description="API: proxies trusted for X-Forwarded-* headers (the load balancer)."
    )
    app_module: str = Field(
        "services.api.main:app",
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
        description="API: the ASGI app gunicorn serves, as module:attribute (your own app "
        "with tickonce included, or tickonce's).",
    )
    health_path: str = Field(
        "/healthz",
        pattern=r"^/[\w./-]*$",
        description="API: the path the container health check requests (your app's tickonce "
        "prefix + /healthz).",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str, info: ValidationInfo) -> str:
        try:
            parsed = parse_url(value)  # type: ignore[no-untyped-call]
        except ValueError as exc:
            raise ValueError(f"not a Redis URL ({exc})") from None
        sentinels = info.data.get("redis_sentinels")  # then the Sentinels name the host
        if value.startswith(("redis://", "rediss://")) and not parsed.get("host") and not sentinels:
            raise ValueError("a redis:// URL needs a host, e.g. redis://localhost:6379/0")
        return value

    @field_validator("redis_cluster")
    @classmethod
    def _cluster(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("redis_sentinels"):
            raise ValueError("a Redis Cluster is not found through Sentinels: unset one of them")
        if value and info.data.get("claim_min_replicas"):
            raise ValueError(
                "CLAIM_MIN_REPLICAS is not supported with Redis Cluster yet (set it to 0)"
            )
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if not value or any(ch.isspace() for ch in value):
            raise ValueError("must be non-empty and contain no whitespace")
        return value

    @field_validator("redis_sentinel_password", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_token", "api_read_token", mode="before")
    @classmethod
    def _token(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if isinstance(value, str) and len(value) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("api_read_token")
    @classmethod
    def _read_token_differs(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        write = info.data.get("api_token")
        if (
            value is not None
            and isinstance(write, SecretStr)
            and hmac.compare_digest(value.get_secret_value(), write.get_secret_value())
        ):
            raise ValueError("must differ from API_TOKEN (this one may only read)")
        return value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _sentinel_addresses(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        addresses = []
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{item!r} is not host:port (e.g. sentinel-1:26379)")
            addresses.append((host.strip("[]"), int(port)))
        return addresses

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
    def body_stop_grace(self) -> float:
        """How long a body asked to stop may take before its worker is killed: well inside
        the ttl by which its running slot would otherwise expire."""
        return min(2.0, self.lease_ttl_seconds / 4)

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
    def durability(self) -> Durability:
        """CLAIM_MIN_REPLICAS, waited for at most half a firing call's time."""
        return Durability(self.claim_min_replicas, max(1, int(self.firing_redis_timeout * 500)))

    @property
    def redacted_redis_url(self) -> str:
        """Where Redis is, for messages: the URL without user, password or secret query values;
        with Sentinels, the master's name and the Sentinels' addresses."""
        if self.redis_sentinels:
            sentinels = ",".join(f"{host}:{port}" for host, port in self.redis_sentinels)
            return f"master {self.redis_sentinel_master!r} via Sentinels {sentinels}"
        return redact_redis_url(self.redis_url)

    def redact(self, text: str) -> str:
        """``text`` (an error message, say) with the Redis URL and each of its secrets
        replaced, whatever a client library put in it."""
        redacted, secrets = _redaction(self.redis_url)
        if self.redis_sentinel_password is not None:
            secrets.add(self.redis_sentinel_password.get_secret_value())
        text = text.replace(self.redis_url, redacted)
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad setting by its environment variable."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        message = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        if name in _HIDDEN_SETTINGS:
            shown = "<hidden>"
        elif name == "REDIS_URL" and isinstance(value, str):
            shown = repr(redact_redis_url(value))
        else:
            shown = repr(value)
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
