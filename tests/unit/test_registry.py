"""The @job decorator and the run context."""

from __future__ import annotations

import pytest

from tickonce._exceptions import JobDefinitionError, JobsModuleError
from tickonce._jobs.registry import Registry, current_run, load_job_modules


def work() -> None: ...


def cleanup() -> None: ...


async def report() -> None: ...


def first() -> None: ...


def second() -> None: ...


def test_defaults_mirror_apscheduler() -> None:
    jobs = Registry()
    jobs.job("interval", seconds=5)(cleanup)

    spec = jobs.get("cleanup")
    assert spec is not None
    assert (spec.id, spec.name, spec.trigger) == ("cleanup", "cleanup", "interval")
    assert (spec.max_instances, spec.misfire_grace_time, spec.coalesce) == (1, 1, True)
    assert not spec.is_async
    assert str(spec.build_trigger()) == "interval[0:00:05]"


def test_options_async_functions_and_cron() -> None:
    jobs = Registry()
    jobs.job(
        "cron",
        id="nightly",
        minute=5,
        hour=2,
        timezone="Europe/Berlin",
        max_instances=3,
        misfire_grace_time=None,
        catch_up="all",
    )(report)

    spec = jobs.get("nightly")
    assert spec is not None and spec.is_async
    assert (spec.max_instances, spec.misfire_grace_time, spec.coalesce) == (3, None, False)
    assert "Europe/Berlin" in repr(spec.build_trigger())


def test_the_fingerprint_changes_only_with_the_definition() -> None:
    def make(seconds: int) -> str:
        jobs = Registry()
        jobs.job("interval", id="j", seconds=seconds)(work)
        spec = jobs.get("j")
        assert spec is not None
        return spec.fingerprint

    assert make(5) == make(5)
    assert make(5) != make(6)


@pytest.mark.parametrize(
    ("trigger", "args", "message"),
    [
        ("hourly", {}, "unknown trigger 'hourly'"),
        ("interval", {"secs": 1}, "invalid interval trigger"),
        ("cron", {"minute": "61"}, "invalid cron trigger"),
        ("cron", {"hour": 1, "timezone": "Mars/Olympus"}, "invalid cron trigger"),
        ("interval", {"seconds": 1, "max_instances": 0}, "max_instances must be >= 1"),
        ("interval", {"seconds": 1, "id": "no spaces"}, "use letters, digits"),
        ("interval", {"seconds": 1, "kwargs": {"nope": 1}}, "kwargs do not fit"),
    ],
)
def test_bad_definitions_say_what_to_fix(
    trigger: str, args: dict[str, object], message: str
) -> None:
    jobs = Registry()
    with pytest.raises(JobDefinitionError, match=message):
        jobs.job(trigger, **args)(work)  # type: ignore[arg-type]


def test_duplicate_ids_are_refused_naming_both_functions() -> None:
    jobs = Registry()
    jobs.job("interval", id="same", seconds=1)(first)
    with pytest.raises(JobDefinitionError, match=r"duplicate job id 'same'.*first.*second"):
        jobs.job("interval", id="same", seconds=1)(second)


def test_a_body_that_cannot_be_imported_by_name_is_refused() -> None:
    def nested() -> None: ...

    with pytest.raises(JobDefinitionError, match=r"'nested'.*define it at the top level"):
        Registry().job("interval", id="nested", seconds=1)(nested)
    with pytest.raises(JobDefinitionError, match="cannot be imported by name"):
        Registry().job("interval", id="lambda", seconds=1)(lambda: None)


def test_current_run_outside_a_job_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="only available inside a running tickonce job"):
        current_run()


def test_a_module_that_does_not_import_is_named() -> None:
    with pytest.raises(JobsModuleError, match=r"cannot import 'tests\.no_such_module'"):
        load_job_modules(["tests.no_such_module"])


def test_catch_up_timeout_and_overlap_options() -> None:
    jobs = Registry()
    jobs.job("interval", id="a", seconds=1, catch_up="skip", timeout=30, max_instances=3)(work)
    jobs.job("interval", id="b", seconds=1, catch_up="all")(work)
    a, b = jobs.get("a"), jobs.get("b")
    assert a is not None and b is not None
    assert (a.policy.catch_up, a.policy.timeout, a.coalesce) == ("skip", 30, True)
    assert (b.policy.catch_up, b.coalesce) == ("all", False), (
        "catch_up all is APScheduler's coalesce=False"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"catch_up": "sometimes"}, "catch_up must be one of coalesce, all, skip"),
        ({"timeout": 0}, "timeout must be > 0"),
    ],
)
def test_bad_run_policies_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(JobDefinitionError, match=message):
        Registry().job("interval", id="x", seconds=1, **options)(work)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overlap": "skip"}, r"overlap was removed in tickonce 0\.2; use max_instances"),
        ({"coalesce": False}, r"coalesce was removed in tickonce 0\.2; use catch_up"),
    ],
)
def test_the_removed_second_spellings_say_what_replaces_them(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(JobDefinitionError, match=f"job 'x': {message}"):
        Registry().job("interval", id="x", seconds=1, **options)(work)  # type: ignore[arg-type]
