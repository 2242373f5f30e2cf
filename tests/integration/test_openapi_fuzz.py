"""Fuzz every operation of the OpenAPI spec against a real server: no 5xx, no schema violation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.support.processes import Processes, wait_until
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.processes

TOKEN = "fuzz-token-0123456789abcdef"


@pytest.fixture(scope="module")
def api_schema(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes = Processes(
        tmp_path_factory.mktemp("fuzz"),
        {
            "REDIS_URL": redis_server.url,
            "KEY_PREFIX": f"fuzz-{uuid.uuid4().hex[:8]}:",
            "JOBS_MODULES": "tests.support.control_jobs",
            "SCHEDULER_MODE": "embedded",
            "API_TOKEN": TOKEN,
            "LEASE_TTL_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
        },
    )
    try:
        processes.gunicorn("api", port, workers=2)

        def leading() -> bool:
            try:
                return httpx.get(f"{base}/scheduler", timeout=5).json()["leader"] is not None
            except (httpx.HTTPError, ValueError, KeyError):
                return False

        wait_until(leading, 30, "the api with a leader")
        yield schemathesis.openapi.from_url(f"{base}/openapi.json")
    finally:
        processes.close()


def test_no_server_errors_and_every_response_matches_the_spec(
    api_schema: schemathesis.BaseSchema,
) -> None:
    """Each operation with generated valid and invalid requests (the token sent, so changes
    are exercised too); schemathesis checks status codes, content types and bodies against
    the spec, and that nothing answers 5xx."""
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 12, [op.label for op in operations]
    for operation in operations:

        @settings(
            max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate(
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=15,
                # Schema-valid requests may still break a rule the schema cannot state (an
                # unknown task, kwargs that do not fit it, an interval of zero): those get a
                # 4xx by design. Every response is still checked against the spec.
                excluded_checks=[positive_data_acceptance],
            )

        check()
