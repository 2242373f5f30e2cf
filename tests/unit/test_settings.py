"""Settings: defaults, parsing, and one clear line (not a traceback) for a bad value."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.core.settings import ConfigError, Settings, describe_validation_error
from tests.support.processes import BIN, REPO


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
    with pytest.raises(Exception) as caught:
        Settings()
    message = describe_validation_error(caught.value)  # type: ignore[arg-type]
    assert message.startswith(f"invalid setting {variable}=")
    assert expected in message
    assert "\n" not in message
    assert isinstance(ConfigError(message), Exception)


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
    result = run(
        [
            str(BIN / "gunicorn"),
            "services.api.main:app",
            "--workers",
            "2",
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
    assert "Traceback" not in output
