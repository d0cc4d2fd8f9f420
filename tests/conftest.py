"""Shared fixtures: the real local Kafka broker, unique topics, and running pipelines as processes.

`make test` starts the broker and passes TOCSIN_TEST_BOOTSTRAP; a plain `pytest` starts one itself
(from the jars `make kafka-fetch` put in .cache) and stops it at the end.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from tocsin.processes import StageProcess

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
# The real data files the tests read, committed in the shared folder's layout (sources and licences in
# its README.md).
DATA = FIXTURES / "data"
# The project's shared real data sits beside the checkout (TOCSIN_SHARED_DATA points elsewhere): what may
# not or need not be committed, the non-commercial lexicons, the Guardian feed, the full ReliefWeb listings.
SHARED = Path(os.environ.get("TOCSIN_SHARED_DATA", ROOT.parent / "shared" / "data"))
# Tests on that data: skipped, with the reason, in a clone that has no shared data beside it.
needs_shared_data = pytest.mark.skipif(
    not SHARED.is_dir(),
    reason="needs the project's shared real data (../shared/data or TOCSIN_SHARED_DATA)",
)


@pytest.fixture(scope="session")
def bootstrap(tmp_path_factory) -> str:
    from_env = os.environ.get("TOCSIN_TEST_BOOTSTRAP")
    if from_env:
        yield from_env
        return
    from tocsin.kafka.local_broker import KAFKA_VERSION, LocalBroker, free_port

    cache = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache"))
    broker = LocalBroker(
        libs_dir=cache / f"kafka-{KAFKA_VERSION}" / "libs",
        data_dir=tmp_path_factory.mktemp("kafka"),
        port=free_port(),
        controller_port=free_port(),
    )
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def admin(bootstrap):
    from kafka import KafkaAdminClient

    client = KafkaAdminClient(bootstrap_servers=bootstrap)
    yield client
    client.close()


@pytest.fixture
def make_topic(admin):
    """Create a uniquely named topic for one test: make_topic('in', partitions=2) -> name."""
    from kafka.admin import NewTopic

    def make(stem: str, partitions: int = 1) -> str:
        name = f"test.{stem}.{uuid.uuid4().hex[:8]}.v1"
        admin.create_topics([NewTopic(name, partitions, 1)])
        return name

    # Topics are left in place for post-mortems; the test broker's data dir is fresh for every run.
    return make


@pytest.fixture
def chain_topics(make_topic):
    """The topics of one run of the whole chain: raw records, signals, alerts and the dead letters and
    cursors of the connectors and pipelines."""
    return {
        "raw": make_topic("incidents", 3),
        "signals": make_topic("signals", 3),
        "alerts": make_topic("alerts", 3),
        "dlq": make_topic("dlq"),
        "connector_dlq": make_topic("connector-dlq"),
        "state": make_topic("state"),
    }


@pytest.fixture
def start_pipeline(tmp_path):
    """Start a pipeline (or the router) as its own process group: start("-m", "tocsin.pipelines...", ...)."""
    started: list[StageProcess] = []

    def start(*args: str) -> StageProcess:
        proc = StageProcess(list(args), tmp_path / f"pipeline-{len(started)}.log", cwd=ROOT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def wait_for(predicate, timeout: float, interval: float = 0.2, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")


def settled(read, job, quiet_s: float, timeout: float, what: str = "the topic") -> list:
    """What read() returns once it has not changed for quiet_s while job runs (the job has caught up)."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        assert job.alive(), job.log_tail()
        found = read()
        if found != last:
            last, since = found, time.monotonic()
        elif found and time.monotonic() - since >= quiet_s:
            return found
        time.sleep(2)
    raise AssertionError(f"{what} did not settle in {timeout:.0f}s ({len(last or [])} records)")


def connect(bootstrap: str, topics: dict, *args: str) -> None:
    """Run a connector (`tocsin connect ARGS`) onto topics["raw"], with its dead-letter and state topics."""
    from typer.testing import CliRunner

    from tocsin.cli import app

    flags = ["-b", bootstrap, "--topic", topics["raw"], "--dead-letter-topic", topics["connector_dlq"]]
    result = CliRunner().invoke(app, ["connect", *args, *flags, "--state-topic", topics["state"]])
    assert result.exit_code == 0, result.output + repr(result.exception)


def router_serve_args(config: Path, bootstrap: str, api_port: int, topics: dict, *extra: str) -> list[str]:
    """`tocsin router serve` as a process, on the test's own alert, ledger, notification, response topics."""
    topic_flags = [
        f"--{name}-topic={topics[name]}" for name in ("alerts", "ledger", "notifications", "responses")
    ]
    return [
        "-m",
        "tocsin.cli",
        "router",
        "serve",
        "--config",
        str(config),
        "-b",
        bootstrap,
        "--listen",
        f"127.0.0.1:{api_port}",
        *topic_flags,
        *extra,
    ]


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory) -> str:
    """A real schema registry (Apicurio Registry, its Confluent API; in-memory, empty at start): the URL
    `--schema-registry-url` takes. Fetched by `make schema-registry` (which `make test` runs first)."""
    from tocsin.kafka.local_broker import free_port
    from tocsin.kafka.local_registry import LocalRegistry, find_registry_jar

    jar = find_registry_jar()
    if jar is None:
        reason = "needs the schema registry that `make schema-registry` fetches into .cache/schema-registry"
        if os.environ.get("TOCSIN_REQUIRE_SCHEMA_REGISTRY"):
            pytest.fail(reason)
        pytest.skip(reason)
    registry = LocalRegistry(jar, free_port(), tmp_path_factory.mktemp("schema-registry") / "registry.log")
    registry.start()
    try:
        yield registry.url
    finally:
        registry.stop()
