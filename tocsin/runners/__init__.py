"""Beam runner options for tocsin's pipelines: Prism locally by default, Flink when asked.

Prism (Beam's Go portable runner) is built by `make prism` from the Beam Go module at the same version
as apache-beam; without it, Beam would try to download a binary, and on a machine without internet the
Python DirectRunner falls back to a batch runner whose windows only fire at end of input.
"""

from __future__ import annotations

import os
from pathlib import Path

from apache_beam.options.pipeline_options import PipelineOptions

BEAM_VERSION = "2.77.0"
PRISM_NO_SPLITS = "--experiments=prism_disable_sdf_split"


def _cache() -> Path:
    return Path(os.environ.get("TOCSIN_CACHE", ".cache"))


def prism_location() -> str:
    path = os.environ.get("TOCSIN_PRISM_LOCATION") or str(_cache() / f"prism-{BEAM_VERSION}" / "prism")
    if not Path(path).exists():
        raise FileNotFoundError(f"Prism runner not found at {path}: run `make prism` (needs Go)")
    return str(Path(path).resolve())


def flink_job_server_jar() -> str:
    path = os.environ.get("TOCSIN_FLINK_JOB_SERVER_JAR") or str(
        _cache() / "flink" / "beam-flink-job-server.jar"
    )
    if not Path(path).exists():
        raise FileNotFoundError(f"Flink job server jar not found at {path}: run `make flink` (needs Maven)")
    return str(Path(path).resolve())


def _has(argv: list[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def streaming_options(argv: list[str]) -> PipelineOptions:
    """Pipeline options for a streaming job: the given flags, plus the local defaults they leave out."""
    return _options(argv, streaming=True)


def batch_options(argv: list[str]) -> PipelineOptions:
    """Pipeline options for a bounded (batch) job on the same runners."""
    return _options(argv, streaming=False)


def _options(argv: list[str], streaming: bool) -> PipelineOptions:
    argv = list(argv)
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
    if runner == "FlinkRunner":
        if not _has(argv, "--flink_master"):
            argv.append("--flink_master=[local]")
        if "--flink_master=[local]" in argv and not _has(argv, "--flink_job_server_jar"):
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
