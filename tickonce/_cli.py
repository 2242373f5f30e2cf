"""The ``tickonce`` command. Settings come from the environment (see the configuration page);
nothing here connects to Redis before a command that needs it runs, so ``--help`` and
``--version`` answer anywhere."""

from __future__ import annotations

from collections.abc import Sequence

import click

from tickonce._version import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tickonce")
def cli() -> None:
    """Exactly-once periodic jobs for FastAPI services scaled out over workers and replicas."""


@cli.command()
def scheduler() -> None:
    """Run a scheduler: contend for leadership, fire the jobs while leading, stand by otherwise.

    Jobs come from the modules in JOBS_MODULES, Redis from REDIS_URL (or REDIS_SENTINELS,
    REDIS_CLUSTER). SIGTERM or SIGINT stops firing, hands leadership to a standby at once and
    lets running jobs finish within SHUTDOWN_GRACE_SECONDS.
    """
    from tickonce._service import run_scheduler  # imported here: --help stays light

    run_scheduler()


@cli.command()
@click.argument("service", type=click.Choice(["scheduler", "api"]))
def health(service: str) -> None:
    """Container health check of SERVICE on this host: exit 0 when healthy, 1 (with the reason
    on stderr) when not. Never connects to Redis."""
    from tickonce._health import api_health, scheduler_health

    raise SystemExit(scheduler_health() if service == "scheduler" else api_health())


def main(args: Sequence[str] | None = None) -> None:
    """The console script's entry point."""
    cli.main(args=list(args) if args is not None else None, prog_name="tickonce")
