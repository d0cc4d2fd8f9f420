"""An ordinary operator mistake is one line on stderr and a non-zero exit: no traceback, no client noise.

Each test names the command and the mistake, and asserts the exit status and the exact first line of
stderr (a refused file may list its errors after it, as the config loaders do). Nothing here needs a
broker: an unreachable one is a port nothing listens on.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.pipelines.rules.config import packaged_rules_path
from tocsin.runners import BEAM_VERSION, prism_location, streaming_options
from tocsin.sample_data import SAMPLE_DIR
from tocsin.schemas import SCHEMA_DIR

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "127.0.0.1:1"  # nothing listens there
RULES = str(packaged_rules_path())
ROUTES = str(ROOT / "router" / "routes.example.yaml")
UCDP = str(SAMPLE_DIR / "ucdp_ged" / "ucdpged_23_1_excerpt300.csv")
BAD_YAML = "rules: [\n  - id: x\n   bad"
DURATION_HINT = "is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"


def invoke(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def refused(result, code: int = 1) -> str:
    """The first line of stderr of a command that exited with `code` without a traceback."""
    assert result.exit_code == code, (result.exit_code, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result.stderr.splitlines()[0]


@pytest.fixture
def bad_yaml(tmp_path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_YAML)
    return path


YAML_ERROR = (
    "  <root>: invalid YAML: while parsing a flow node expected the node content, but found '-' "
    'in "<unicode string>", line 2, column 3: - id: x ^'
)

# -- a missing file ----------------------------------------------------------------------------------


def test_rules_test_with_missing_signals_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    result = invoke("rules", "test", RULES, "--signals", str(missing))
    assert refused(result) == f"error: {missing}: No such file or directory"


def test_rules_test_with_missing_rules_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = invoke("rules", "test", str(missing), "--signals", str(tmp_path / "signals.jsonl"))
    assert refused(result) == f"{missing}: 1 error(s)"
    assert result.stderr.splitlines()[1] == "  <root>: cannot read nope.yaml: No such file or directory"


@pytest.mark.parametrize(
    "command",
    [("rules", "check", RULES), ("indicators", "explain", "houses burned")],
    ids=["rules", "explain"],
)
def test_a_missing_catalogue_is_named_as_every_missing_config_is(tmp_path, command):
    missing = tmp_path / "nope.yaml"
    result = invoke(*command, "--catalogue", str(missing))
    assert refused(result) == f"{missing}: 1 error(s)"
    assert result.stderr.splitlines()[1] == "  <root>: cannot read nope.yaml: No such file or directory"


def test_connect_ucdp_with_missing_file(tmp_path):
    # not typer's usage box (exit 2): the connector's own one line, before Kafka is touched
    result = invoke("connect", "ucdp", str(tmp_path / "nope.csv"), "-b", NOWHERE)
    assert refused(result) == "error: nope.csv: cannot be read: No such file or directory"


def test_connect_gdelt_with_missing_folder(tmp_path):
    missing = tmp_path / "nope"
    result = invoke("connect", "gdelt", "--dir", str(missing), "-b", NOWHERE)
    assert refused(result) == f"error: --dir {missing}: no such folder"


def test_router_serve_with_missing_config(tmp_path):
    missing = tmp_path / "nope.yaml"
    result = invoke("router", "serve", "--config", str(missing), "-b", NOWHERE)
    assert refused(result) == f"{missing}: 1 error(s)"


def test_backtest_with_missing_file(tmp_path):
    result = invoke("backtest", "--from-file", "nope.csv", "--episodes", "e.csv", "--report", str(tmp_path))
    assert refused(result) == "nope.csv: no such file or directory"


# -- bad YAML ----------------------------------------------------------------------------------------


def test_rules_check_with_bad_yaml(bad_yaml):
    result = invoke("rules", "check", str(bad_yaml))
    assert refused(result) == f"{bad_yaml}: 1 error(s)"
    assert result.stderr.splitlines()[1] == YAML_ERROR


def test_routes_test_with_bad_yaml(bad_yaml):
    result = invoke("routes", "test", "country=SDN", "--config", str(bad_yaml))
    assert refused(result) == f"{bad_yaml}: 1 error(s)"
    assert result.stderr.splitlines()[1] == YAML_ERROR


def test_topics_create_with_a_bad_topics_file(bad_yaml, tmp_path):
    result = invoke("topics", "create", "--topics-file", str(bad_yaml), "-b", NOWHERE)
    assert refused(result) == f"{bad_yaml}: 1 error(s)"
    assert result.stderr.splitlines()[1] == YAML_ERROR
    misnamed = tmp_path / "topics.yaml"
    misnamed.write_text(
        "topics: [{name: x, schema: Alert, partitions: 1, retention_ms: -1, cleanup: delete}]"
    )
    result = invoke("topics", "create", "--topics-file", str(misnamed), "-b", NOWHERE)
    assert refused(result) == f"{misnamed}: 2 error(s)"


def test_a_bad_catalogue_is_named_as_such_not_as_the_rules_file(bad_yaml):
    result = invoke("rules", "check", RULES, "--catalogue", str(bad_yaml))
    assert refused(result) == f"{bad_yaml}: 1 error(s)"
    assert result.stderr.splitlines()[1] == YAML_ERROR


# -- an unreachable router or broker -----------------------------------------------------------------


def test_router_ack_with_unreachable_router():
    result = invoke("router", "ack", "a1", "-r", "duty officer", "--url", "http://127.0.0.1:1")
    assert refused(result) == "error: cannot reach the router at http://127.0.0.1:1: Connection refused"


def test_topics_create_with_unreachable_broker_is_one_line_within_10_s():
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tocsin.cli", "topics", "create", "-b", NOWHERE],
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("TOCSIN_KAFKA_")},
    )
    assert time.monotonic() - start < 10
    assert done.returncode == 1
    # the whole of stderr: none of kafka-python's retries (tocsin/telemetry/noise.py)
    assert done.stderr == f"error: cannot reach Kafka at {NOWHERE}: no broker answered within 5s\n"


def test_kafka_pythons_retries_are_debug_not_warnings(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("kafka.net.manager").error(
            "Connection failed: KafkaConnectionError: 111 ECONNREFUSED"
        )
        logging.getLogger("kafka.net.connection").error(
            "<KafkaConnection node_id=bootstrap-0>: Connection lost: KafkaConnectionError: 111 ECONNREFUSED"
        )
        logging.getLogger("kafka.net.manager").warning("Bootstrap bootstrap-0 not ready; waiting 0.10 secs")
        logging.getLogger("kafka.net.manager").error("Fetch to node 1 failed: something else")
    assert [r.getMessage()[:22] for r in caplog.records] == ["Fetch to node 1 failed"]


FAST = {"TOCSIN_KAFKA_BOOTSTRAP_TIMEOUT": "1s"}


def test_a_connector_with_unreachable_broker():
    result = invoke("connect", "ucdp", UCDP, "-b", NOWHERE, env=FAST)
    assert refused(result) == f"error: cannot reach Kafka at {NOWHERE}: no broker answered within 1s"
    assert len(result.stderr.splitlines()) == 1


def test_router_serve_with_unreachable_broker():
    result = invoke("router", "serve", "--config", ROUTES, "-b", NOWHERE, "--listen", "127.0.0.1:0", env=FAST)
    assert refused(result) == f"error: cannot reach Kafka at {NOWHERE}: no broker answered within 1s"
    assert len(result.stderr.splitlines()) == 1


def test_router_serve_on_a_taken_port_says_so_before_reaching_kafka():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = invoke("router", "serve", "--config", ROUTES, "-b", NOWHERE, "--listen", listen)
    assert refused(result) == f"error: --listen {listen}: Address already in use"


def test_ledger_verify_with_unreachable_broker():
    result = invoke("ledger", "verify", "-b", NOWHERE, env=FAST)
    assert refused(result) == f"error: cannot reach Kafka at {NOWHERE}: no broker answered within 1s"


# -- a bad duration ----------------------------------------------------------------------------------


def test_silence_add_with_bad_duration():
    result = invoke(
        "silence", "add", "-m", 'country="SDN"', "--author", "a", "--reason", "r", "--duration", "soon"
    )
    assert refused(result) == f"error: --duration: duration 'soon' {DURATION_HINT}"


def test_a_jobs_bad_lateness_is_one_line_naming_the_flag():
    result = invoke("pipeline", "alerts", "--allowed-lateness", "soon")
    assert refused(result, code=2) == (
        f"tocsin pipeline alerts: error: argument --allowed-lateness: duration 'soon' {DURATION_HINT}"
    )
    assert len(result.stderr.splitlines()) == 1  # no usage first


def test_indicator_jobs_bad_early_after_is_one_line_naming_the_flag():
    result = invoke("pipeline", "indicators", "--early-after", "soon")
    assert refused(result, code=2) == (
        f"tocsin pipeline indicators: error: argument --early-after: duration 'soon' {DURATION_HINT}"
    )


# -- the runner ----------------------------------------------------------------------------------------


def test_runner_given_with_a_space_reaches_the_runner_defaults(tmp_path):
    # `--runner FlinkRunner` (as README writes it) is `--runner=FlinkRunner`: the local Flink defaults
    # apply, here the job server jar, which is missing
    jar = tmp_path / "absent.jar"
    result = invoke(
        "pipeline", "alerts", "--runner", "FlinkRunner", env={"TOCSIN_FLINK_JOB_SERVER_JAR": str(jar)}
    )
    assert refused(result) == (
        f"tocsin pipeline alerts: error: Flink job server jar not found at {jar} "
        "(TOCSIN_FLINK_JOB_SERVER_JAR): run `make flink` (needs Maven)"
    )


def test_runner_flags_with_a_space_are_joined(monkeypatch, tmp_path):
    jar = tmp_path / "job-server.jar"
    jar.write_text("")
    monkeypatch.setenv("TOCSIN_FLINK_JOB_SERVER_JAR", str(jar))
    opts = streaming_options(["--runner", "FlinkRunner", "--flink_master", "flink:8081"]).get_all_options()
    assert (opts["runner"], opts["flink_master"], opts["environment_type"]) == (
        "FlinkRunner",
        "flink:8081",
        "LOOPBACK",
    )
    opts = streaming_options(
        ["--runner", "FlinkRunner", "--job_endpoint", "localhost:8099"]
    ).get_all_options()
    assert opts["job_endpoint"] == "localhost:8099"


def test_runner_without_its_value_is_one_line():
    result = invoke("pipeline", "window-count", "--input-topic", "a", "--output-topic", "b", "--runner")
    assert refused(result) == "tocsin pipeline window-count: error: --runner needs a value (--runner=VALUE)"


# -- schemas check ---------------------------------------------------------------------------------


def test_schemas_check_against_a_missing_git_ref():
    result = invoke("schemas", "check", "--against", "no-such-ref")
    assert refused(result) == f"error: --against no-such-ref: neither a folder nor a git ref of {ROOT}"


def test_schemas_check_against_a_missing_folder(tmp_path):
    missing = tmp_path / "baseline"
    result = invoke("schemas", "check", "--against", str(missing))
    assert refused(result) == f"error: --against {missing}: neither a folder nor a git ref of {ROOT}"


def test_schemas_check_against_a_folder_needs_no_git(tmp_path, monkeypatch):
    # as from an installed wheel: schemas outside any repository, and no git on the PATH
    for name in ("baseline", "current"):
        shutil.copytree(SCHEMA_DIR, tmp_path / name, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    monkeypatch.setenv("PATH", str(tmp_path))
    ok = invoke(
        "schemas", "check", "--against", str(tmp_path / "baseline"), "--schema-dir", str(tmp_path / "current")
    )
    assert ok.exit_code == 0, ok.stderr
    head = invoke("schemas", "check", "--schema-dir", str(tmp_path / "current"))
    assert refused(head) == "error: git is not installed: give --against a folder of .avsc files"


# -- the Prism runner's location -------------------------------------------------------------------


def test_prism_is_found_in_the_checkouts_cache_from_any_working_directory(tmp_path, monkeypatch):
    built = ROOT / ".cache" / f"prism-{BEAM_VERSION}" / "prism"
    if not built.exists():
        pytest.skip("make prism has not been run in this checkout")
    monkeypatch.delenv("TOCSIN_PRISM_LOCATION", raising=False)
    monkeypatch.delenv("TOCSIN_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert prism_location() == str(built)


def test_a_missing_prism_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("TOCSIN_PRISM_LOCATION", raising=False)
    monkeypatch.setenv("TOCSIN_CACHE", str(tmp_path))
    result = invoke("pipeline", "window-count", "--input-topic", "a", "--output-topic", "b")
    assert refused(result) == (
        f"tocsin pipeline window-count: error: Prism runner not found (looked at {tmp_path}/prism-"
        f"{BEAM_VERSION}/prism): run `make prism` (needs Go), or set TOCSIN_PRISM_LOCATION"
    )


# -- help ------------------------------------------------------------------------------------------


def _commands(command, path=("tocsin",)):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_command_and_sub_command_has_a_help_line():
    missing = [
        " ".join(path)
        for path, command in _commands(typer.main.get_command(app))
        if not (command.help or command.short_help or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("path", [p for p, _ in _commands(typer.main.get_command(app))], ids=" ".join)
def test_help_of_every_command_exits_0(path):
    result = invoke(*path[1:], "--help")
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "usage" in result.stdout.lower()
