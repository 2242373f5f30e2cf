"""The package as users install it: the wheel holds one top-level package, ``tickonce``, typed;
installed in a clean virtualenv its public names import, ``tickonce --help`` answers without
Redis, and the drop-in recipe the README shows runs each fire time once from that install."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import redis

from tests.support.ledger_checks import duplicates
from tests.support.processes import REPO, Processes, wait_until
from tests.support.redis_server import RedisServer, free_port
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.keys import Keys

pytestmark = pytest.mark.processes

RECIPE = REPO / "examples" / "recipe" / "main.py"
JOB = "main.tick"


def run(*argv: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(arg) for arg in argv], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built offline from a copy of the tree (nothing written into the repo)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv", ".peers", "build", "*.egg-info", "site"),
    )
    built = run(
        sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
        "-w", work / "dist", source, cwd=work,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (found,) = (work / "dist").glob("tickonce-*.whl")
    return found


@pytest.fixture(scope="module")
def clean_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed and nothing else of this project. Its
    dependencies come from this environment's site-packages, added as a plain path (its .pth
    files, among them this project's editable install, are not processed)."""
    venv = tmp_path_factory.mktemp("venv") / "clean"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = run(
        sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", wheel,
        cwd=venv.parent,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=venv
    )
    deps = Path(purelib.stdout.strip()) / "dependencies.pth"
    deps.write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_wheel_holds_one_typed_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    tops = {name.split("/")[0] for name in names}
    assert {top for top in tops if not top.endswith(".dist-info")} == {"tickonce"}
    assert "tickonce/py.typed" in names
    assert "tickonce/_api/static/index.html" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert b"License-Expression: MIT" in metadata
    assert not any(name.startswith("services/") for name in names)


def test_the_installed_package_imports_and_its_command_answers_without_redis(
    clean_venv: Path, tmp_path: Path
) -> None:
    python = clean_venv / "bin" / "python"
    code = (
        "import tickonce\n"
        "from tickonce import AsyncIOScheduler, current_run, include_tickonce, job\n"
        "print(tickonce.__file__)"
    )
    imported = run(python, "-c", code, cwd=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.strip().startswith(str(clean_venv)), imported.stdout
    for args in (["--help"], ["--version"], ["scheduler", "--help"]):
        answered = run(clean_venv / "bin" / "tickonce", *args, cwd=tmp_path)
        assert answered.returncode == 0, answered.stderr
    assert "scheduler" in run(clean_venv / "bin" / "tickonce", "--help", cwd=tmp_path).stdout


def test_the_readme_recipe_runs_each_fire_time_once_from_the_installed_package(
    clean_venv: Path,
    tmp_path: Path,
    redis_server: RedisServer,
    client: redis.Redis,
    prefix: str,
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    shutil.copy(RECIPE, app / "main.py")
    processes = Processes(tmp_path / "logs", {"KEY_PREFIX": prefix})
    try:
        argv = [str(clean_venv / "bin" / "python"), "-m", "gunicorn", "-w", "2"]
        argv += ["-k", "uvicorn_worker.UvicornWorker", "--bind", f"127.0.0.1:{free_port()}"]
        processes.start_in(
            app, "recipe", [*argv, "main:app"], REDIS_URL=redis_server.url, PYTHONPATH=str(app)
        )
        runs = Keys(prefix).ledger(JOB)
        wait_until(lambda: client.xlen(runs) >= 4, 60, "four fire times in the ledger")
        assert processes.terminate("recipe") == 0, processes.log("recipe")[-3000:]
    finally:
        processes.close()
    ledger = [RunRecord.from_fields(fields) for _, fields in client.xrange(runs) or []]
    times = [fire_ms(entry.scheduled_at) for entry in ledger]
    assert not duplicates(times), f"fire times recorded twice: {duplicates(times)}"
    assert any(entry.status == "succeeded" for entry in ledger)
