"""What the peer benchmark needs from the machine: Debian's packages, installed when missing."""

from __future__ import annotations

import os
import subprocess


def debian_packages(*packages: str) -> None:
    """Install the Debian ``packages`` not installed yet (apt-get; needs root)."""
    missing = [
        package
        for package in packages
        if "install ok installed"
        not in subprocess.run(
            ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True
        ).stdout
    ]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"make bench-peers needs Debian's {', '.join(missing)}: install as root")
    print(f"==> apt-get install {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
        check=True,
        env=env,
    )
