"""Earlier releases of tickonce, taken from this repository's history, to run beside this code
(upgrade and rollback tests). Each runs from its own source tree with this environment's
dependencies, the way a rollback to an older image runs against the same Redis."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.processes import REPO

# The last commit of each release: what its containers ran.
RELEASES = {"0.2.0": "39134ce1179499579bb7f82d2e2df25c974aee55"}
# What a release's containers were built from (see its deploy/Dockerfile).
TREE = ["services", "deploy/gunicorn.conf.py"]


def extract_release(version: str, into: Path) -> Path:
    """The source tree of release ``version`` under ``into``; processes started there (cwd)
    import that release's packages first."""
    commit = RELEASES[version]
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", commit, *TREE],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        raise RuntimeError(
            f"cannot read release {version} ({commit[:10]}) from this repository's history: "
            f"{archive.stderr.decode(errors='replace').strip()} (a shallow clone lacks it: "
            "git fetch --unshallow)"
        )
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into
