"""Settings: defaults, parsing, and one clear line (not a traceback) for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from tests.support.processes import BIN, REPO
from tickonce._config.settings import Settings, describe_validation_error, get_settings
from tickonce._exceptions import ConfigError


def test_defaults_and_comma_separated_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_MODULES", "a.jobs, b.jobs,,")
    settings = Settings()
    assert settings.key_prefix == "tickonce:"
    assert settings.scheduler_mode == "off"
    assert settings.lease_ttl_seconds == 5
    assert settings.jobs_modules == ["a.jobs", "b.jobs"]
    assert settings.ledger_max_entries == 1000


def test_the_password_never_appears_in_messages() -> None:
    settings = Settings(redis_url="redis://:s3cret@redis:6379/0")
    assert "s3cret" not in settings.redacted_redis_url
    assert settings.redacted_redis_url == "redis://***@redis:6379/0"


@pytest.mark.parametrize(
    ("url", "secrets", "redacted"),
    [
        ("redis://:s3cret@redis:6379/0", ["s3cret"], "redis://***@redis:6379/0"),
        (
            "redis://user:s3cret@host:6379/0",
            ["s3cret", "user:s3cret"],
            "redis://***@host:6379/0",
        ),
        (
            "rediss://admin:s3cret@cache.example.com:6380/2",
            ["s3cret", "admin:s3cret"],
            "rediss://***@cache.example.com:6380/2",
        ),
        ("redis://s3cret@host:6379/0", ["s3cret"], "redis://***@host:6379/0"),
        ("redis://:s3cr%40et@host/1", ["s3cr%40et", "s3cr@et"], "redis://***@host/1"),
        (
            "redis://host:6379/0?password=s3cret",
            ["s3cret"],
            "redis://host:6379/0?password=***",
        ),
        (
            "redis://host:6379?db=3&username=admin&password=s3cret",
            ["s3cret", "admin"],
            "redis://host:6379?db=3&username=***&password=***",
        ),
        (
            "rediss://host:6380/0?ssl_password=s3cret&socket_timeout=2",
            ["s3cret"],
            "rediss://host:6380/0?ssl_password=***&socket_timeout=2",
        ),
        (
            "redis://[::1]:6379/0?password=s3cr%26et",
            ["s3cr%26et", "s3cr&et"],
            "redis://[::1]:6379/0?password=***",
        ),
        (
            "unix://:s3cret@/tmp/redis.sock?db=0",
            ["s3cret"],
            "unix://***@/tmp/redis.sock?db=0",
        ),
        (
            "unix://user:s3cret@/var/run/redis/redis.sock?db=2",
            ["s3cret", "user:s3cret"],
            "unix://***@/var/run/redis/redis.sock?db=2",
        ),
        ("unix:///tmp/x.sock?password=s3cret", ["s3cret"], "unix:///tmp/x.sock?password=***"),
        ("unix:///tmp/x.sock?db=0#s3cret", ["s3cret"], "unix:///tmp/x.sock?db=0"),
        ("redis://localhost:6379/0", [], "redis://localhost:6379/0"),
        ("unix:///tmp/redis.sock", [], "unix:///tmp/redis.sock"),
    ],
)
def test_every_form_of_redis_secret_is_redacted(
    url: str, secrets: list[str], redacted: str
) -> None:
    settings = Settings(redis_url=url)
    shown = settings.redacted_redis_url
    for secret in secrets:
        assert secret not in shown
    assert shown == redacted, "host, port, db and socket path stay readable"


def test_error_texts_are_scrubbed_of_the_url_and_password() -> None:
    settings = Settings(redis_url="unix://user:s3cr%40et@/tmp/redis.sock?password=0ther")
    text = f"boom: {settings.redis_url} said s3cr@et, s3cr%40et and 0ther"
    scrubbed = settings.redact(text)
    for secret in ("s3cr@et", "s3cr%40et", "0ther", "user:"):
        assert secret not in scrubbed
    assert scrubbed.startswith("boom: unix://***@/tmp/redis.sock?password=***")


def test_a_bad_redis_url_is_named_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://user:s3cret@localhost:notaport/0")
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = describe_validation_error(caught.value)
    assert message.startswith("invalid setting REDIS_URL='redis://***@localhost:notaport/0'")
    assert "s3cret" not in message


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"API_READ_TOKEN": "short-secret"}, "at least 16 characters"),
        (
            {"API_TOKEN": "same-token-0123456789", "API_READ_TOKEN": "same-token-0123456789"},
            "must differ from API_TOKEN",
        ),
    ],
)
def test_a_bad_read_token_is_named_but_never_shown(
    monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], expected: str
) -> None:
    for variable, value in overrides.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = describe_validation_error(caught.value)
    assert message.startswith("invalid setting API_READ_TOKEN=<hidden>: ")
    assert expected in message
    assert "short-secret" not in message and "same-token" not in message


def test_an_empty_read_token_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_READ_TOKEN", "")
    assert Settings().api_read_token is None
    monkeypatch.setenv("API_READ_TOKEN", "read-token-0123456789")
    token = Settings().api_read_token
    assert token is not None and token.get_secret_value() == "read-token-0123456789"
    assert "read-token" not in repr(Settings())


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("LEASE_TTL_SECONDS", "0", "greater than 0"),
        ("LEASE_TTL_SECONDS", "soon", "valid number"),
        ("REDIS_URL", "http://localhost:6379", "not a Redis URL"),
        ("REDIS_URL", "redis://localhost:notaport/0", "not a Redis URL"),
        ("SCHEDULER_MODE", "always", "'off' or 'embedded'"),
        ("KEY_PREFIX", "has space", "no whitespace"),
    ],
)
def test_a_bad_setting_is_named_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    message = describe_validation_error(caught.value)
    assert message.startswith(f"invalid setting {variable}=")
    assert [str(item["loc"][0]).upper() for item in caught.value.errors()] == [variable]
    assert expected in message
    assert "\n" not in message

    get_settings.cache_clear()
    try:
        with pytest.raises(ConfigError) as config_error:
            get_settings()
    finally:
        get_settings.cache_clear()
    assert str(config_error.value) == message, "processes stop with this one line"


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=REPO,
        env={"PATH": str(BIN), "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LEASE_TTL_SECONDS": "0"}, "LEASE_TTL_SECONDS"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
        ({"JOBS_MODULES": "no.such.module"}, "JOBS_MODULES"),
    ],
)
def test_the_scheduler_stops_at_start_with_one_line_naming_the_setting(
    env: dict[str, str], named: str
) -> None:
    result = run([sys.executable, "-m", "services.scheduler"], **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tickonce: ") and named in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_gunicorn_stops_instead_of_respawning_workers_on_a_bad_setting() -> None:
    # One worker: with two, both fail at the same instant now and then, and gunicorn 27's
    # halt reaps the second while stopping and raises again, printing a traceback of its own
    # (seen in CI: HaltServer raised in Arbiter.stop -> reap_workers). A respawn would still
    # show here: gunicorn would start the worker again and again instead of exiting.
    result = run(
        [
            str(BIN / "gunicorn"),
            "services.api.main:app",
            "--workers",
            "1",
            "--worker-class",
            "uvicorn_worker.UvicornWorker",
            "--bind",
            "127.0.0.1:0",
        ],
        JOBS_MODULES="no.such.module",
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "tickonce: JOBS_MODULES: cannot import 'no.such.module'" in output
    assert "Traceback" not in output, output


def test_sentinels_name_the_master_and_the_url_gives_only_credentials_db_and_tls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tickonce._storage.clients import _url_options

    monkeypatch.setenv("REDIS_SENTINELS", "sentinel-1:26379, sentinel-2:26379,[::1]:26380")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "jobs")
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "s3ntinel-pass")
    settings = Settings(redis_url="rediss://app:s3cret@/2")  # no host: the Sentinels say
    assert settings.redis_sentinels == [
        ("sentinel-1", 26379),
        ("sentinel-2", 26379),
        ("::1", 26380),
    ]
    assert settings.redacted_redis_url == (
        "master 'jobs' via Sentinels sentinel-1:26379,sentinel-2:26379,::1:26380"
    )
    assert _url_options(settings) == {"username": "app", "password": "s3cret", "db": 2, "ssl": True}
    scrubbed = settings.redact("auth failed: s3ntinel-pass / s3cret")
    assert "s3ntinel-pass" not in scrubbed and "s3cret" not in scrubbed


@pytest.mark.parametrize("value", ["sentinel-1", "sentinel-1:port", ":26379", "host:70000"])
def test_a_bad_sentinel_address_is_named(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_SENTINELS", value)
    with pytest.raises(ValidationError, match="is not host:port"):
        Settings()


def test_without_sentinels_the_url_needs_a_host() -> None:
    with pytest.raises(ValidationError, match="needs a host"):
        Settings(redis_url="redis:///0")
