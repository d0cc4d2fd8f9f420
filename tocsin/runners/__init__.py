"""Beam runner options for tocsin's pipelines: Prism locally by default, Flink when asked.

Prism (Beam's Go portable runner) is built by `make prism` from the Beam Go module at the same version
as apache-beam; without it, Beam would try to download a binary, and on a machine without internet the
Python DirectRunner falls back to a batch runner whose windows only fire at end of input.
"""

from __future__ import annotations

import os
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

from tocsin.config import find_in_cache

BEAM_VERSION = "2.77.0"
PRISM_NO_SPLITS = "--experiments=prism_disable_sdf_split"
# The options this module reads or defaults: given as `--flag value`, they are joined to `--flag=value`.
VALUED = (
    "--runner",
    "--prism_location",
    "--flink_master",
    "--flink_job_server_jar",
    "--environment_type",
    "--job_server_timeout",
    "--job_endpoint",
)


class RunnerNotFound(FileNotFoundError):
    """A runner binary or jar that `make` builds is in none of the places looked at (one line)."""


def _located(variable: str, relative: str, what: str, make: str) -> str:
    if os.environ.get(variable):
        path = Path(os.environ[variable])
        if not path.exists():
            raise RunnerNotFound(f"{what} not found at {path} ({variable}): {make}")
        return str(path.resolve())
    found, looked = find_in_cache(relative)
    if found is None:
        places = ", ".join(str(p) for p in looked)
        raise RunnerNotFound(f"{what} not found (looked at {places}): {make}, or set {variable}")
    return str(found)


def prism_location() -> str:
    """TOCSIN_PRISM_LOCATION, else prism-<version>/prism in the cache (tocsin.config.cache_dirs)."""
    return _located(
        "TOCSIN_PRISM_LOCATION", f"prism-{BEAM_VERSION}/prism", "Prism runner", "run `make prism` (needs Go)"
    )


def flink_job_server_jar() -> str:
    return _located(
        "TOCSIN_FLINK_JOB_SERVER_JAR",
        "flink/beam-flink-job-server.jar",
        "Flink job server jar",
        "run `make flink` (needs Maven)",
    )


def _has(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def _joined(argv: list[str]) -> list[str]:
    """`--runner FlinkRunner` as `--runner=FlinkRunner` (Beam takes both; the defaults below read one)."""
    out, rest = [], list(argv)
    while rest:
        arg = rest.pop(0)
        if arg in VALUED:
            if not rest or rest[0].startswith("--"):
                raise ValueError(f"{arg} needs a value ({arg}=VALUE)")
            arg = f"{arg}={rest.pop(0)}"
        out.append(arg)
    return out


def streaming_options(argv: list[str]) -> PipelineOptions:
    """Pipeline options for a streaming job: the given flags, plus the local defaults they leave out."""
    return _options(argv, streaming=True)


def batch_options(argv: list[str]) -> PipelineOptions:
    """Pipeline options for a bounded (batch) job on the same runners."""
    return _options(argv, streaming=False)


def _options(argv: list[str], streaming: bool) -> PipelineOptions:
    argv = _joined(argv)
    if not _has(argv, "--runner"):
        argv.append("--runner=PrismRunner")
    runner = next(a.split("=", 1)[1] for a in argv if a.startswith("--runner="))
    if runner == "PrismRunner" and not _has(argv, "--prism_location"):
        argv.append(f"--prism_location={prism_location()}")
    if runner == "PrismRunner" and PRISM_NO_SPLITS not in argv:
        # Prism 2.77 splits a slow bundle by cutting its element list at the SDK's data index, but a
        # stateful stage's bundle mixes data and timers: the cut re-queues timers (and data) the SDK
        # still processes, and frees their keys, so a timer fires twice at once on the same state and
        # its output is emitted twice (Beam issue #35771). tocsin's sources never accept such a split
        # anyway (a Kafka restriction only checkpoints), so runner-initiated splits are turned off.
        argv.append(PRISM_NO_SPLITS)
    if runner == "FlinkRunner" and not _has(argv, "--job_endpoint"):
        # No job server given: Beam starts one per launch, for an embedded Flink by default or for the
        # cluster at --flink_master. Beam would download its own 2.77 job-server jar, which is not
        # published: the one `make flink` builds is used instead. With --job_endpoint (a running job
        # server, e.g. `tocsin flink-cluster up`'s) that server's --flink-master applies.
        if not _has(argv, "--flink_master"):
            argv.append("--flink_master=[local]")
        if not _has(argv, "--flink_job_server_jar"):
            argv.append(f"--flink_job_server_jar={flink_job_server_jar()}")
    if runner in ("PrismRunner", "FlinkRunner") and not _has(argv, "--environment_type"):
        argv.append("--environment_type=LOOPBACK")  # SDK workers in this process: no docker needed
    if runner in ("PrismRunner", "FlinkRunner") and not _has(argv, "--job_server_timeout"):
        # Beam uses this as the deadline of the job-state stream too: at its default (300 s) a
        # streaming job fails after five minutes with DEADLINE_EXCEEDED. Ten years instead.
        argv.append("--job_server_timeout=315360000")
    if streaming and not _has(argv, "--streaming"):
        argv.append("--streaming")
    return PipelineOptions(argv)
