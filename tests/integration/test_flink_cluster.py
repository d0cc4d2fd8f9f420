"""On a real Flink session cluster the indicator and alert jobs give the signals and alerts of Prism.

The cluster is the one `make flink-cluster-up` starts (`tocsin flink cluster up`, here in a folder of the
test's own): a JobManager and a TaskManager with 2 slots, each its own JVM on Flink 1.19 jars from Maven
Central, and Beam's Flink job server submitting to its REST port. The same raw records (the real UCDP GED
sample and GDELT exports, through the connectors) are produced once to a 4-partition topic; the indicator
job reads them on Prism and, with --parallelism 2 and two Kafka readers, on the cluster, each into its
own 4-partition signals topic; then the alert job reads each runner's signals into that runner's alerts.

Compared: the final value of every signal (the last record per id: window, count, weights, deaths,
sources, evidence) and of every alert (per alert id, its sequence of states and its last record), not
the panes' timing fields (emitted_at; the pane kind and index, which Flink and Prism may number
differently), which are the runner's.

The SDK workers are LOOPBACK: threads of the launching Python process, which the TaskManager calls back;
the parallelism is Flink's (two task slots, two subtasks per stage), the Python work is one process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import DATA, ROOT, connect, settled
from tocsin.kafka.read import read_topic
from tocsin.runners.flink_cluster import LocalFlinkCluster, rest
from tocsin.serde.avro import decode

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.flink, pytest.mark.flink_cluster]

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
GDELT = DATA / "gdelt2" / "export_15min"
PARTITIONS = 4
COMMON = ("--max-out-of-orderness", "1500000000s", "--close-when-idle", "--idle-timeout", "2s")
# The runner's, not the job's: when a pane was emitted and how the runner numbered it.
SIGNAL_TIMING = ("emitted_at", "pane", "pane_index")


def cache() -> Path:
    return Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache")).resolve()


@pytest.fixture(scope="module")
def flink_cluster(tmp_path_factory):
    """A Flink session cluster of the test's own, started and stopped by the CLI `make` runs."""
    lib = Path(os.environ.get("FLINK_CLUSTER_LIB", cache() / "flink-cluster" / "lib"))
    jar = os.environ.get("TOCSIN_FLINK_JOB_SERVER_JAR") or cache() / "flink" / "beam-flink-job-server.jar"
    jar = Path(jar)
    if not (lib / ".fetched").exists() or not jar.exists():
        reason = f"needs {lib} (make flink-cluster-fetch) and {jar} (make flink)"
        if os.environ.get("TOCSIN_REQUIRE_FLINK_CLUSTER"):
            pytest.fail(reason)
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("flink-cluster")
    env = {
        **os.environ,
        "FLINK_CLUSTER_DIR": str(work),
        "FLINK_CLUSTER_LIB": str(lib),
        "TOCSIN_FLINK_JOB_SERVER_JAR": str(jar),
    }

    def cli(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "tocsin.cli", "flink", "cluster", *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)

    started = time.monotonic()
    up = cli("up")
    assert up.returncode == 0, up.stdout + up.stderr
    print(f"\nflink cluster up in {time.monotonic() - started:.0f}s: {up.stdout.strip()}")
    cluster = LocalFlinkCluster(lib_dir=lib, job_server_jar=jar, work_dir=work)
    try:
        state = cluster.running()
        assert state is not None and set(state.pids) == {"jobmanager", "taskmanager", "job-server"}
        # Three processes, none of them this one or each other.
        assert len({*state.pids.values(), os.getpid()}) == 4
        assert "running" in cli("status").stdout
        yield cluster
    finally:
        down = cli("down")
        assert down.returncode == 0 and "stopped" in down.stdout, down.stdout + down.stderr
        assert cluster.running() is None


def cancel_jobs(cluster: LocalFlinkCluster, name: str) -> None:
    """Cancel the cluster's job `name` (its launcher gone, it would only retry and fail)."""
    for job in cluster.jobs():
        if job["name"] == name and job["state"] not in ("FINISHED", "FAILED", "CANCELED"):
            cluster.cancel(job["jid"])


def records(bootstrap: str, topic: str) -> list:
    return read_topic({"bootstrap_servers": bootstrap}, topic)


def final_signals(bootstrap: str, topic: str) -> dict[str, dict]:
    """The last record per signal id (one id always lands on one partition), without its pane timing."""
    out = {}
    for record in records(bootstrap, topic):
        signal = decode(record.value)
        out[signal["id"]] = {k: v for k, v in signal.items() if k not in SIGNAL_TIMING}
    return out


def alert_history(bootstrap: str, topic: str) -> tuple[dict, dict]:
    """({alert id: [(sequence, status, severity), ...]}, {alert id: its last record})."""
    states, last = defaultdict(list), {}
    for record in records(bootstrap, topic):
        alert = decode(record.value)
        states[alert["id"]].append((alert["sequence"], alert["status"], alert["severity"]))
        last[alert["id"]] = alert
    return dict(states), last


def indicator_job(bootstrap: str, raw: str, signals: str, dlq: str, group: str, *runner: str) -> list[str]:
    return [
        "-m", "tocsin.pipelines.indicators.job",
        "--input-topic", raw,
        "--signals-topic", signals,
        "--dead-letter-topic", dlq,
        "--bootstrap-servers", bootstrap,
        "--group-id", group,
        "--window", "7d/1d",
        "--no-regions",
        "--early-after", "0",
        *COMMON,
        *runner,
    ]  # fmt: skip


def alert_job(bootstrap: str, signals: str, alerts: str, dlq: str, group: str, *runner: str) -> list[str]:
    return [
        "-m", "tocsin.pipelines.rules.job",
        "--signals-topic", signals,
        "--alerts-topic", alerts,
        "--dead-letter-topic", dlq,
        "--bootstrap-servers", bootstrap,
        "--group-id", group,
        "--start", "committed",
        *COMMON,
        *runner,
    ]  # fmt: skip


def test_indicator_and_alert_jobs_on_a_flink_cluster_match_prism(
    bootstrap, make_topic, start_pipeline, flink_cluster
):
    topics = {
        "raw": make_topic("incidents", PARTITIONS),
        "connector_dlq": make_topic("connector-dlq"),
        "state": make_topic("state"),
    }
    connect(bootstrap, topics, "ucdp", str(UCDP))
    connect(bootstrap, topics, "gdelt", "--dir", str(GDELT))
    assert len({r.partition for r in records(bootstrap, topics["raw"])}) == PARTITIONS

    state = flink_cluster.running()
    run = uuid.uuid4().hex[:8]
    runners = {
        "prism": lambda job: [],
        "flink": lambda job: [
            *state.runner_flags(),
            "--parallelism=2",
            "--source-shards=2",
            f"--job_name=tocsin-{job}-{run}",
        ],
    }
    out = {
        runner: {name: make_topic(f"{runner}-{name}", PARTITIONS) for name in ("signals", "alerts", "dlq")}
        for runner in runners
    }

    # The indicator job on both runners at once (each its own group, its own output), until each
    # signals topic has settled; then the alert job on each runner's signals.
    timings = {}
    for job, args_of, source, sink in (
        ("indicators", indicator_job, "raw", "signals"),
        ("alerts", alert_job, "signals", "alerts"),
    ):
        started = time.monotonic()
        procs = {}
        for runner, flags in runners.items():
            inputs = topics["raw"] if source == "raw" else out[runner][source]
            args = args_of(bootstrap, inputs, out[runner][sink], out[runner]["dlq"], f"{job}-{runner}-{run}")
            procs[runner] = start_pipeline(*args, *flags(job))
        try:
            for runner, proc in procs.items():
                topic = out[runner][sink]
                settled(lambda t=topic: records(bootstrap, t), proc, 20, 600, f"{runner} {sink}")
                print(f"[{job} on {runner}: settled after {time.monotonic() - started:.0f}s]", flush=True)
                timings[f"{job} on {runner}"] = time.monotonic() - started
        finally:
            for proc in procs.values():
                proc.kill()
            cancel_jobs(flink_cluster, f"tocsin-{job}-{run}")
    print(" ".join(f"[{what}: settled after {s:.0f}s]" for what, s in timings.items()))

    # Both jobs ran on the cluster, their stages as two parallel subtasks.
    for job in ("indicators", "alerts"):
        ran = [j for j in flink_cluster.jobs() if j["name"] == f"tocsin-{job}-{run}"]
        assert len(ran) == 1, flink_cluster.jobs()
        vertices = rest(state, f"/jobs/{ran[0]['jid']}")["vertices"]
        assert max(v["parallelism"] for v in vertices) == 2, vertices

    signals = {runner: final_signals(bootstrap, out[runner]["signals"]) for runner in runners}
    assert len(signals["prism"]) > 100
    assert sorted(set(signals["prism"]) ^ set(signals["flink"]))[:5] == []
    differing = [sid for sid in signals["prism"] if signals["prism"][sid] != signals["flink"][sid]]
    assert differing[:3] == [], [(signals["prism"][s], signals["flink"][s]) for s in differing[:1]]

    (prism_states, prism_last), (flink_states, flink_last) = (
        alert_history(bootstrap, out[runner]["alerts"]) for runner in runners
    )
    assert len(prism_states) > 20
    assert sorted(set(prism_states) ^ set(flink_states))[:5] == []
    assert {a: s for a, s in flink_states.items() if s != prism_states[a]} == {}
    assert [a for a in prism_last if prism_last[a] != flink_last[a]][:3] == []
