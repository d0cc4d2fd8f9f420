"""One broker of a three-broker cluster killed (kill -9) while a connector writes raw records and the
indicator job turns them into signals: the connector and the job carry on without a restart, and end
with the records of the file, each once, and the signals of an uninterrupted run: every pane of every
window, none lost, none twice, none changed.

Slow (minutes): marked `faults`, run by `make test-faults` and, alone, `make test-kafka-cluster`.

The cluster is the one `make kafka-cluster-up` starts (`tocsin kafka cluster up`, LocalCluster: three
combined broker/controller nodes, the voters of one KRaft quorum), on ports and a data dir of the test's
own. Its topics are created as `tocsin topics create --deployment cluster` creates them: three replicas
of every partition, min.insync.replicas=2, so a write acknowledged to an acks=all producer is on two
brokers at least and one broker can be down without a write refused. The test checks that every
packaged topic has exactly that.

The connector (`tocsin connect ucdp`) replays the committed UCDP GED sample paced over REPLAY_S, twenty
records a transaction, onto the three partitions of the raw topic. The indicator job (7d/1d windows per
country, no early panes, out-of-orderness 7d, --close-when-idle) reads it live and starts once every
partition has a committed record (a partition that never had one moves on with the wall clock, and the
sample's 1989-2022 records would all be late). Once the job has written signals and committed offsets,
and while the connector still has a good part of the file to write, the broker is killed that
coordinates the connector's transactions and the job's consumer group (the job's group is named so
that the same broker coordinates both); it also leads about a third of the partitions of every topic.
The two others take over its partitions (they keep two in-sync replicas, enough for
min.insync.replicas=2), the transactions and the group's commits. The killed broker stays down until the
run has settled, then comes back on its data dir and catches up (every partition of the run's topics has
three in-sync replicas again).

The uninterrupted run is a second indicator job, in a group of its own, over the same raw topic once
complete (a backlog): which records count in which window depends only on the records before them in
their partition (the partitions are in event-time order: no record is late), not on how the reads fell,
so the two runs agree pane by pane (tests/faults/test_kills_indicators.py reads a backlog against a
live topic the same way). The dead letters of both stand for the same input records.

What the kill found: kafka-python's transactional producer, its coordinator's broker gone, dropped the
request it could not send and waited for its commit forever (the connector hung; see connectors/base.py,
which now hands a transaction not finished in 30 s to a new producer of the same transactional id, and
writes the batch again unless the stuck transaction committed after all). The Beam job's clients (the
confluent-kafka source, the idempotent sink, the committer) rode out the kill as they were.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from typer.testing import CliRunner

from tests.conftest import DATA, ROOT, settled, wait_for
from tests.faults.test_broker_restarts import consumed, end_offsets, twice
from tests.faults.test_kills_indicators import committed, letters
from tocsin.cli import app
from tocsin.formats import ucdp
from tocsin.kafka.local_broker import KAFKA_VERSION, LocalCluster, free_port, free_ports
from tocsin.kafka.read import read_topic
from tocsin.kafka.topics import CONNECTOR_STATE, DEAD_LETTERS, INCIDENTS, SIGNALS, TopicList, load_topics
from tocsin.kafka.topics import create_topics as create_declared
from tocsin.serde.avro import decode

pytestmark = [pytest.mark.integration, pytest.mark.runner, pytest.mark.faults]

UCDP = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"
LIBS = Path(os.environ.get("TOCSIN_CACHE", ROOT / ".cache")) / f"kafka-{KAFKA_VERSION}" / "libs"
# The sample's 34 years of events replayed over 80 s, as a live source writes: long enough that the job,
# started after the first records, is writing and committing while the connector has a good part left.
REPLAY_S = 80
BATCH = 20  # records a connector transaction: fifty transactions, one every 1.6 s
JOB = (
    "--window", "7d/1d", "--no-regions", "--early-after", "0",
    "--max-out-of-orderness", "7d", "--close-when-idle", "--idle-timeout", "2s",
)  # fmt: skip
QUIET_S = 10  # settled: no new signal for this long, every record read
TRANSACTIONAL_ID = f"tocsin.connector.{ucdp.SOURCE}/{UCDP.name}"  # the connector's (connectors/base.py)


@pytest.fixture
def cluster(tmp_path):
    """The cluster as `make kafka-cluster-up` and `-down` start and stop it, on the test's ports."""
    ports = free_ports(6)
    own = LocalCluster(LIBS, tmp_path / "cluster", tuple(ports[:3]), tuple(ports[3:]))
    env = {
        "KAFKA_LIBS": str(LIBS),
        "KAFKA_CLUSTER_DATA": str(own.data_dir),
        "KAFKA_CLUSTER_PORTS": ",".join(map(str, own.ports)),
        "KAFKA_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, own.controller_ports)),
    }
    up = CliRunner().invoke(app, ["kafka", "cluster", "up"], env=env)
    try:
        assert up.exit_code == 0, up.output
        assert up.stdout.startswith(f"kafka cluster up: {own.bootstrap_servers} (pids ")
        yield own
    finally:
        down = CliRunner().invoke(app, ["kafka", "cluster", "down"], env=env)
        assert down.stdout == "kafka cluster stopped\n"
        assert not any(own.running_pids().values())


def client(cluster: LocalCluster) -> dict:
    return {"bootstrap_servers": cluster.bootstrap_servers.split(",")}


def sample() -> list[dict]:
    with UCDP.open(encoding="utf-8", newline="") as text:
        return [item for _, item in ucdp.parse_csv(text, UCDP.name) if isinstance(item, dict)]


def replicas_and_min_isr(admin: KafkaAdminClient, names: list[str]) -> dict[str, tuple[set, str]]:
    """{topic: (the replica counts of its partitions, its min.insync.replicas)}."""
    described = {t["name"]: t for t in admin.describe_topics(names)}
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names])
    return {
        name: (
            {len(p["replica_nodes"]) for p in described[name]["partitions"]},
            configs["topic"].get(name, {}).get("min.insync.replicas", {}).get("value"),
        )
        for name in names
    }


def in_sync(admin: KafkaAdminClient, names: list[str]) -> set[int]:
    """The numbers of in-sync replicas the partitions of the topics have."""
    return {len(p["isr_nodes"]) for t in admin.describe_topics(names) for p in t["partitions"]}


def committed_records(cluster: LocalCluster, topic: str) -> list[int]:
    """Each partition's last stable offset: what a read_committed reader can read of it now."""
    consumer = KafkaConsumer(isolation_level="read_committed", enable_auto_commit=False, **client(cluster))
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return [end for _, end in sorted(consumer.end_offsets(tps).items())]
    finally:
        consumer.close()


def coordinator(admin: KafkaAdminClient, key: str, internal_topic: str) -> int:
    """The broker that coordinates a consumer group (`__consumer_offsets`) or a transactional id
    (`__transaction_state`): the leader of the internal topic's partition Kafka assigns the key to,
    the absolute value of Java's String.hashCode of the key modulo the topic's partitions."""
    h = 0
    for char in key:
        h = (31 * h + ord(char)) & 0xFFFFFFFF
    h = h - (1 << 32) if h >= 1 << 31 else h
    partitions = admin.describe_topics([internal_topic])[0]["partitions"]
    chosen = (0 if h == -(1 << 31) else abs(h)) % len(partitions)
    return next(p["leader_id"] for p in partitions if p["partition_index"] == chosen)


def group_coordinated_by(admin: KafkaAdminClient, servers: str, broker: int) -> str:
    """A consumer group name whose coordinator is `broker`: the job's, so that the kill takes the group
    coordinator and the connector's transaction coordinator at once."""
    committed(servers, INCIDENTS, "lookup")  # a group's first lookup creates __consumer_offsets

    def created() -> bool:
        partitions = admin.describe_topics(["__consumer_offsets"])[0]["partitions"]
        return len(partitions) > 0 and all(p["leader_id"] >= 0 for p in partitions)

    wait_for(created, 60, 1, "__consumer_offsets")
    return next(
        g
        for g in (f"killed-{n}" for n in range(1000))
        if coordinator(admin, g, "__consumer_offsets") == broker
    )


def leaders(admin: KafkaAdminClient, topic: str) -> dict[int, int]:
    return {p["partition_index"]: p["leader_id"] for p in admin.describe_topics([topic])[0]["partitions"]}


def indicator_job(cluster: LocalCluster, topics: dict, group: str, port: int) -> list[str]:
    return [
        "-m", "tocsin.pipelines.indicators.job", "--input-topic", topics["raw"],
        "--signals-topic", topics["signals"], "--dead-letter-topic", topics["dlq"],
        "--bootstrap-servers", cluster.bootstrap_servers, "--group-id", group,
        "--metrics-port", str(port), *JOB,
    ]  # fmt: skip


def panes(cluster: LocalCluster, topic: str) -> list[tuple[tuple[str, int], dict]]:
    """Every pane on the topic: ((signal id, pane index), the signal without the time it was emitted)."""
    out = []
    for record in read_topic(client(cluster), topic):
        signal = decode(record.value)
        out.append(
            ((signal["id"], signal["pane_index"]), {k: v for k, v in signal.items() if k != "emitted_at"})
        )
    return out


def settle(cluster: LocalCluster, job, port: int, topic: str, records: int) -> list:
    """The job's panes once it has read every record and written nothing new for QUIET_S."""
    wait_for(lambda: consumed(port) >= records or not job.alive(), 300, 1, "the job to read every record")
    assert job.alive(), job.log_tail()
    settled(lambda: sum(end_offsets(cluster, topic)), job, QUIET_S, 300, "the signals")
    return panes(cluster, topic)


def test_a_broker_killed_mid_stream_loses_and_repeats_no_record_or_signal(cluster, start_pipeline):
    started, servers = time.monotonic(), cluster.bootstrap_servers
    expected = sample()
    span_s = (expected[-1]["event_time"] - expected[0]["event_time"]) / 1000

    # The operator's path: every packaged topic on three brokers, two of them in sync for a write.
    result = CliRunner().invoke(
        app, ["topics", "create", "-b", cluster.bootstrap_servers, "--deployment", "cluster"]
    )
    assert result.exit_code == 0, result.output
    packaged = load_topics()
    admin = KafkaAdminClient(**client(cluster))
    try:
        names = [t.name for t in packaged.topics]
        spread = {name: ({3}, "2") for name in names}  # a topic just created may describe empty at first
        wait_for(lambda: replicas_and_min_isr(admin, names) == spread, 30, 1, "three replicas, min ISR 2")
        # The connector's dead letters, and the uninterrupted run's signals and dead letters: topics of
        # their own, declared as the packaged ones are.
        run = {"raw": INCIDENTS, "signals": SIGNALS, "dlq": DEAD_LETTERS}
        calm = {"raw": INCIDENTS, "signals": "tocsin.calm.signals.v1", "dlq": "tocsin.calm.deadletter.v1"}
        connector_dlq = "tocsin.connector.deadletter.v1"
        copies = [
            packaged.by_schema(schema).model_copy(update={"name": name})
            for name, schema in (
                (calm["signals"], "IndicatorSignal"),
                (calm["dlq"], "DeadLetter"),
                (connector_dlq, "DeadLetter"),
            )
        ]
        own = TopicList(deployments=packaged.deployments, topics=copies)
        assert set(create_declared(admin, own, "cluster").values()) == {"created"}
        connector = start_pipeline(
            "-m", "tocsin.cli", "connect", "ucdp", str(UCDP), "-b", cluster.bootstrap_servers,
            "--topic", INCIDENTS, "--dead-letter-topic", connector_dlq, "--state-topic", CONNECTOR_STATE,
            "--speed", str(span_s / REPLAY_S), "--batch-size", str(BATCH),
        )  # fmt: skip
        wait_for(
            lambda: all(committed_records(cluster, INCIDENTS)) or not connector.alive(),
            120, 0.5, "a committed record in every raw partition",
        )  # fmt: skip
        assert connector.alive(), connector.log_tail()
        # The broker to kill: the one coordinating the connector's transactions (the kill that left
        # kafka-python's producer waiting forever, connectors/base.py) and the job's consumer group.
        victim = coordinator(admin, TRANSACTIONAL_ID, "__transaction_state")
        group = group_coordinated_by(admin, servers, victim)

        port = free_port()
        job = start_pipeline(*indicator_job(cluster, run, group, port))
        wait_for(
            lambda: (sum(end_offsets(cluster, SIGNALS)) and any(committed(servers, INCIDENTS, group)))
            or not job.alive(),
            240, 1, "the job's first signals and commit",
        )  # fmt: skip
        assert job.alive(), job.log_tail()
        assert connector.alive(), "the connector finished before the kill: the job started too late"

        assert coordinator(admin, TRANSACTIONAL_ID, "__transaction_state") == victim
        assert coordinator(admin, group, "__consumer_offsets") == victim
        led = {
            t: sorted(p for p, leader in leaders(admin, t).items() if leader == victim)
            for t in (INCIDENTS, SIGNALS)
        }
        at_kill = (sum(committed_records(cluster, INCIDENTS)), sum(end_offsets(cluster, SIGNALS)))
        killed_at = time.monotonic() - started
        assert cluster.node(victim).kill()
        admin.close()
        admin = KafkaAdminClient(**client(cluster))

        assert connector.proc.wait(timeout=300) == 0, connector.log_tail()
        assert job.alive(), job.log_tail()
        records = sum(1 for _ in read_topic(client(cluster), INCIDENTS))
        got = settle(cluster, job, port, SIGNALS, records)
        killed_letters = letters(cluster.bootstrap_servers, DEAD_LETTERS)
        after_kill = sum(end_offsets(cluster, SIGNALS)) - at_kill[1]
        job.kill()
        settled_at = time.monotonic() - started

        # The killed broker back on its data dir: it catches up with what the two others took meanwhile.
        cluster.node(victim).start()
        wait_for(lambda: in_sync(admin, [INCIDENTS, SIGNALS]) == {3}, 120, 1, "three in-sync replicas again")

        calm_port = free_port()
        calm_job = start_pipeline(*indicator_job(cluster, calm, "calm", calm_port))
        want = settle(cluster, calm_job, calm_port, calm["signals"], records)
        calm_letters = letters(cluster.bootstrap_servers, calm["dlq"])
        calm_job.kill()
    finally:
        admin.close()

    takeovers = connector.log_path.read_text().count("a new producer takes over")
    ids = [decode(r.value)["id"] for r in read_topic(client(cluster), INCIDENTS)]
    connector_letters = read_topic(client(cluster), connector_dlq)
    print(
        f"cluster broker kill: broker {victim} (the connector's transaction coordinator, the job's "
        f"group coordinator, leader of raw partitions {led[INCIDENTS]} and signal partitions "
        f"{led[SIGNALS]}) killed at {killed_at:.0f}s with {at_kill[0]} of {len(expected)} "
        f"records and {at_kill[1]} signal panes out; after it: {len(ids) - at_kill[0]} records, "
        f"{after_kill} panes; {len(ids)} records ({len(set(ids))} distinct), {len(got)} panes of "
        f"{len({key[0] for key, _ in got})} windows against the uninterrupted run's {len(want)}; "
        f"{len(killed_letters)} dead letters; {takeovers} transaction(s) of the connector handed to a "
        f"new producer; settled at {settled_at:.0f}s, "
        f"{time.monotonic() - started:.0f}s in all"
    )
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    assert repeated == [], f"{len(repeated)} records twice, e.g. {repeated[:3]}"
    assert set(ids) == {r["id"] for r in expected}, "records lost or not from the file"
    assert connector_letters == []
    assert 0 < at_kill[0] < len(expected) and after_kill > 0, "the kill did not fall mid-stream"
    assert twice(key for key, _ in got) == [], "a signal pane was written twice"
    assert twice(key for key, _ in want) == []
    assert len(want) > 1000
    assert dict(got) == dict(want), "signal panes lost, not expected or changed"
    assert killed_letters == calm_letters
