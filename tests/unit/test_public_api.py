"""tickonce's public face is one import: ``tickonce.__all__``, loaded lazily. Everything else is
private, every error is a TickonceError, every logger is under ``tickonce.``."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

from apscheduler.jobstores.base import ConflictingIdError, JobLookupError

import tickonce
from tickonce import _exceptions

PACKAGE = Path(tickonce.__file__).parent

PUBLIC = {
    "AsyncIOScheduler",
    "ConfigError",
    "ConflictingIdError",
    "JobDefinitionError",
    "JobLookupError",
    "JobsModuleError",
    "LeaderUnavailable",
    "NotStartedError",
    "RunContext",
    "ScheduledJob",
    "Settings",
    "TickonceError",
    "UnknownTaskError",
    "UnreadableJobError",
    "UnsupportedCallError",
    "current_run",
    "include_tickonce",
    "job",
}


def test_the_public_face_is_what_all_lists_and_every_name_loads() -> None:
    assert set(tickonce.__all__) == PUBLIC
    assert sorted(dir(tickonce)) == sorted(PUBLIC)
    for name in tickonce.__all__:
        assert getattr(tickonce, name) is not None, name
    assert tickonce.__version__.count(".") == 2


def test_every_error_is_a_tickonce_error_and_every_public_one_is_exported() -> None:
    classes = [c for _, c in inspect.getmembers(_exceptions, inspect.isclass)]
    raised = [c for c in classes if c.__module__ == _exceptions.__name__]
    assert all(issubclass(c, tickonce.TickonceError) for c in raised)
    public_section = _exceptions.__file__ and Path(_exceptions.__file__).read_text()
    public_part = public_section.split("# -- internal")[0]
    for cls in raised:
        if f"class {cls.__name__}(" in public_part:
            assert cls.__name__ in tickonce.__all__, f"{cls.__name__} is public but not exported"
    for cls in (ConflictingIdError, JobLookupError):  # APScheduler's, raised where it does
        assert cls.__name__ in tickonce.__all__


def test_no_error_class_is_defined_outside_the_exceptions_module() -> None:
    # Internal control flow only: a refused command (an HTTP answer), an oversized request, and
    # the stop of a body (a BaseException so a body's `except Exception` cannot swallow it).
    allowed = {"Refusal", "_TooLarge", "BodyStopped"}
    stray = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name not in allowed:
                bases = [base.id for base in node.bases if isinstance(base, ast.Name)]
                if any(base.endswith(("Error", "Exception")) for base in bases):
                    stray.append(f"{path.relative_to(PACKAGE)}: {node.name}")
    assert not stray, stray


def test_every_module_but_the_public_face_is_private() -> None:
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).parts
        if parts in (("__init__.py",), ("__main__.py",)):
            continue
        assert parts[0].startswith("_"), f"{path}: a module outside a private package"


def test_every_logger_is_under_tickonce() -> None:
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
            ):
                arg = node.args[0]
                if isinstance(arg, ast.Name):
                    assert arg.id == "__name__", f"{path}: getLogger({arg.id})"
                else:
                    assert isinstance(arg, ast.Constant), f"{path}: {ast.dump(arg)}"
                    assert str(arg.value).startswith("tickonce."), f"{path}: {arg.value!r}"


def test_importing_the_package_or_a_body_worker_loads_no_web_framework() -> None:
    code = (
        "import sys, tickonce, tickonce._bodies.worker, tickonce._health, tickonce._cli\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette'))\n"
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_the_command_answers_help_and_version_without_redis() -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "PATH": "/usr/bin:/bin"}
    for args in (["--help"], ["scheduler", "--help"], ["--version"]):
        result = subprocess.run(
            [sys.executable, "-m", "tickonce", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )
        assert result.returncode == 0, result.stderr
    assert (
        "scheduler"
        in subprocess.run(
            [sys.executable, "-m", "tickonce", "--help"], capture_output=True, text=True, timeout=60
        ).stdout
    )
