"""`tocsin flink cluster up/down/status/jobs`: the local Flink session cluster (tocsin.runners.flink_cluster).

Where it runs and with which jars: FLINK_CLUSTER_DIR (default <cache>/flink-cluster/run),
FLINK_CLUSTER_LIB (default <cache>/flink-cluster/lib, what `make flink-cluster-fetch` fills) and
TOCSIN_FLINK_JOB_SERVER_JAR (default <cache>/flink/beam-flink-job-server.jar, `make flink`).
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from tocsin.cli_errors import fail
from tocsin.config import cache_dirs

flink_app = typer.Typer(help="Flink for the Beam jobs.", no_args_is_help=True)
cluster_app = typer.Typer(
    help="A local Flink 1.19 session cluster (a JobManager, a TaskManager with 2 slots) and Beam's Flink "
    "job server pointed at it (FLINK_CLUSTER_DIR, FLINK_CLUSTER_LIB, TOCSIN_FLINK_JOB_SERVER_JAR).",
    no_args_is_help=True,
)
flink_app.add_typer(cluster_app, name="cluster")


def local_cluster():
    # Here, not at the top: tocsin.runners loads Beam's options (1.8 s), and every `tocsin` command,
    # `--help` too, imports this module.
    from tocsin.runners.flink_cluster import LocalFlinkCluster  # noqa: PLC0415

    cache = cache_dirs()[0]
    jar = os.environ.get("TOCSIN_FLINK_JOB_SERVER_JAR") or cache / "flink" / "beam-flink-job-server.jar"
    return LocalFlinkCluster(
        lib_dir=Path(os.environ.get("FLINK_CLUSTER_LIB", cache / "flink-cluster" / "lib")),
        job_server_jar=Path(jar),
        work_dir=Path(os.environ.get("FLINK_CLUSTER_DIR", cache / "flink-cluster" / "run")).resolve(),
    )


@cluster_app.command("up")
def cluster_up() -> None:
    """Start the JobManager, the TaskManager and the job server, wait until each answers, and print the
    pipeline options that run a job there."""
    cluster = local_cluster()
    try:
        state = cluster.start()
    except cluster.Error as error:
        fail(f"error: {error}")
    pids = ", ".join(f"{role} {pid}" for role, pid in state.pids.items())
    typer.echo(f"flink cluster up: REST http://{state.flink_master}, job server {state.job_endpoint}")
    typer.echo(f"pids: {pids}; logs in {cluster.log_dir}")
    typer.echo(f"run a job there with: {' '.join(state.runner_flags())}")


@cluster_app.command("down")
def cluster_down() -> None:
    """Stop the cluster's processes by their recorded pids."""
    stopped = local_cluster().stop()
    typer.echo("flink cluster stopped" if stopped else "flink cluster was not running")


@cluster_app.command("status")
def cluster_status() -> None:
    """Say which of the cluster's processes run (exit 1 unless all do)."""
    state, alive = local_cluster().status()
    if state is None:
        typer.echo("not running")
        raise typer.Exit(1)
    for role, running in alive.items():
        typer.echo(f"{role}: " + (f"running (pid {state.pids.get(role)})" if running else "not running"))
    if all(alive.values()):
        typer.echo(f"REST http://{state.flink_master}; job server {state.job_endpoint}")
        typer.echo(" ".join(state.runner_flags()))
    else:
        raise typer.Exit(1)


@cluster_app.command("jobs")
def cluster_jobs() -> None:
    """List the cluster's jobs: id, state, name."""
    cluster = local_cluster()
    try:
        jobs = cluster.jobs()
    except cluster.Error as error:
        fail(f"error: {error}")
    for job in jobs:
        typer.echo(f"{job['jid']}  {job['state']:10} {job['name']}")
