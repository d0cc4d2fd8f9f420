"""/metrics listens where --metrics-address says (127.0.0.1 unless told, TOCSIN_METRICS_ADDRESS as the
container image sets it), for the typer commands and the Beam jobs alike; an address that cannot be bound
is one line; every process that serves metrics exports tocsin_build_info."""

from __future__ import annotations

import importlib.metadata
import platform
import socket
import urllib.request

import pytest
from typer.testing import CliRunner

from tests.conftest import wait_for
from tocsin.cli import app
from tocsin.kafka.local_broker import free_port
from tocsin.processes import StageProcess
from tocsin.telemetry.metrics import DEFAULT_METRICS_ADDRESS, build_info, serve_metrics

# Any 127.x address is this machine's on Linux: one that is not 127.0.0.1 shows where the server listens.
OTHER_LOOPBACK = "127.0.0.2"
NOT_THIS_MACHINE = "192.0.2.1"  # TEST-NET-1: never a local address


def _metrics(host: str, port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as response:
            return response.read().decode()
    except OSError:
        return None


def _refused(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, port)) != 0


def test_the_default_address_is_loopback():
    assert DEFAULT_METRICS_ADDRESS == "127.0.0.1"


def test_serve_metrics_binds_the_address_given_and_exports_build_info():
    port = serve_metrics(0, OTHER_LOOPBACK)
    body = _metrics(OTHER_LOOPBACK, port)
    assert body is not None
    assert _refused("127.0.0.1", port)  # not on every interface, only where told
    info = build_info()
    assert info["version"] == importlib.metadata.version("tocsin")
    assert info["beam"] == importlib.metadata.version("apache-beam")
    assert info["python"] == platform.python_version()
    line = next(x for x in body.splitlines() if x.startswith("tocsin_build_info{"))
    assert f'version="{info["version"]}"' in line and f'beam="{info["beam"]}"' in line
    assert line.endswith(" 1.0")


def test_a_command_given_an_address_it_cannot_bind_says_so_in_one_line():
    port = free_port()
    result = CliRunner().invoke(
        app,
        ["connect", "rss", "http://127.0.0.1:9/feed", "--once", "-b", "127.0.0.1:9"]
        + ["--metrics-port", str(port), "--metrics-address", NOT_THIS_MACHINE],
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: --metrics-address {NOT_THIS_MACHINE} --metrics-port {port}: Cannot assign requested "
        "address; /metrics not served"
    ]


def test_the_address_comes_from_the_environment_as_in_the_container_image():
    port = free_port()
    result = CliRunner().invoke(
        app,
        [
            "connect",
            "rss",
            "http://127.0.0.1:9/feed",
            "--once",
            "-b",
            "127.0.0.1:9",
            "--metrics-port",
            str(port),
        ],
        env={"TOCSIN_METRICS_ADDRESS": NOT_THIS_MACHINE},
    )
    assert result.exit_code == 1
    assert f"--metrics-address {NOT_THIS_MACHINE} --metrics-port {port}" in result.output


def test_a_beam_job_reads_the_same_option_and_environment_variable(monkeypatch):
    from tocsin.pipelines.options import KafkaOptions

    def address(*args: str) -> str:
        from apache_beam.options.pipeline_options import PipelineOptions

        return PipelineOptions(list(args)).view_as(KafkaOptions).metrics_address

    assert address() == "127.0.0.1"
    assert address("--metrics-address", OTHER_LOOPBACK) == OTHER_LOOPBACK
    assert address("--metrics_address", OTHER_LOOPBACK) == OTHER_LOOPBACK


def test_a_beam_job_given_an_address_it_cannot_bind_says_so_in_one_line(capsys):
    from tocsin.pipelines.rules import job

    port = free_port()
    with pytest.raises(SystemExit) as exit_info:
        job.run(["--metrics-port", str(port), "--metrics-address", NOT_THIS_MACHINE, "-b", "127.0.0.1:9"])
    assert exit_info.value.code == 1
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .endswith(
            f"error: --metrics-address {NOT_THIS_MACHINE} --metrics-port {port}: Cannot assign requested "
            "address; /metrics not served"
        )
    )


def test_a_served_process_listens_where_told(tmp_path):
    """A real process: `tocsin intake serve` with --metrics-address 127.0.0.2."""
    from tocsin.organisations import token_digest

    config = tmp_path / "intake.yaml"
    config.write_text(
        "host: 127.0.0.1\nport: 0\nsecret: " + "k" * 40 + "\n"
        f"organisations:\n  - {{name: monitors, token_sha256: {token_digest('t')}}}\n"
    )
    port = free_port()
    proc = StageProcess(
        ["-m", "tocsin.cli", "intake", "serve", "--config", str(config), "-b", "127.0.0.1:9"]
        + ["--metrics-port", str(port), "--metrics-address", OTHER_LOOPBACK],
        tmp_path / "intake.log",
    )
    try:
        body = wait_for(
            lambda: _metrics(OTHER_LOOPBACK, port) or not proc.alive(), 60, message="the intake's /metrics"
        )
        assert proc.alive(), proc.log_tail()
        assert "tocsin_build_info{" in body and "tocsin_intake_requests_total" in body
        assert _refused("127.0.0.1", port)
    finally:
        proc.kill()
