"""The local three-broker cluster's layout (`tocsin kafka cluster`): each node's KRaft settings, the ports
the operator gives, validated with every error listed. No broker runs here: the cluster itself runs in
tests/faults/test_cluster_broker_kill.py."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tocsin.cli import app
from tocsin.kafka.local_broker import (
    BrokerError,
    ClusterLayoutError,
    LocalBroker,
    LocalCluster,
    cluster_layout,
    free_ports,
)

KEYS = (
    "node.id",
    "controller.quorum.voters",
    "listeners",
    "advertised.listeners",
    "log.dirs",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
)


def settings(broker: LocalBroker) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in broker.server_properties().splitlines() if "=" in line)
    return {key: value for key, value in pairs if key in KEYS}


def test_each_node_of_a_cluster_is_a_voter_of_one_quorum_on_its_own_ports_and_data_dir(tmp_path):
    cluster = LocalCluster(Path("libs"), tmp_path, (19092, 19093, 19094), (19192, 19193, 19194))
    assert cluster.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert settings(cluster.node(2)) == {
        "node.id": "2",
        "controller.quorum.voters": "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194",
        "listeners": "PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19193",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:19093",
        "log.dirs": str(tmp_path / "node-2" / "kraft-logs"),
        # The group commits and the transactions of the connectors survive a broker, as the topics do.
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
    }
    assert [node.data_dir for node in cluster.nodes()] == [tmp_path / f"node-{n}" for n in (1, 2, 3)]


def test_a_lone_broker_is_the_only_voter_with_one_replica_of_everything(tmp_path):
    assert settings(LocalBroker(Path("libs"), tmp_path, 29092, 29093)) == {
        "node.id": "1",
        "controller.quorum.voters": "1@127.0.0.1:29093",
        "listeners": "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093",
        "advertised.listeners": "PLAINTEXT://127.0.0.1:29092",
        "log.dirs": str(tmp_path / "kraft-logs"),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
    }


def test_the_nodes_share_the_cluster_id_the_data_dir_keeps(tmp_path):
    cluster = LocalCluster(Path("libs"), tmp_path, (1, 2, 3), (4, 5, 6))
    assert {node.cluster_id for node in cluster.nodes()} == {None}  # none yet: start() writes one
    cluster.cluster_id_file.write_text("q1Sh-9_ASKunEfT4-NsCMA\n")
    assert {node.cluster_id for node in cluster.nodes()} == {"q1Sh-9_ASKunEfT4-NsCMA"}


def test_a_cluster_node_on_a_taken_port_names_the_cluster_settings_that_move_it(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cluster = LocalCluster(Path("libs"), tmp_path, (port, 2, 3), (4, 5, 6))
        with pytest.raises(BrokerError) as caught:
            cluster.node(1).launch()  # refused before any JVM starts
    assert str(caught.value) == (
        f"port {port} on 127.0.0.1 is already in use by another process; choose another with "
        "KAFKA_CLUSTER_PORTS / KAFKA_CLUSTER_CONTROLLER_PORTS"
    )


def test_cluster_ports_are_read_from_comma_separated_lists():
    assert cluster_layout("19092, 19093,19094", "19192,19193,19194") == (
        (19092, 19093, 19094),
        (19192, 19193, 19194),
    )


@pytest.mark.parametrize(
    ("ports", "controller_ports", "errors"),
    [
        (
            "19092,x,70000",
            "19192,",
            [
                "KAFKA_CLUSTER_PORTS: 'x' is not a port (1-65535)",
                "KAFKA_CLUSTER_PORTS: '70000' is not a port (1-65535)",
                "KAFKA_CLUSTER_CONTROLLER_PORTS: '' is not a port (1-65535)",
            ],
        ),
        (
            "19092,19093",
            "19192,19193",
            ["KAFKA_CLUSTER_PORTS: 2 broker(s); a cluster has 3 or more, so that one can be down"],
        ),
        (
            "19092,19093,19094",
            "19192,19093",
            [
                "KAFKA_CLUSTER_CONTROLLER_PORTS: 2 port(s) for 3 brokers: one each",
                "port 19093 is given twice",
            ],
        ),
    ],
    ids=["not ports", "too few", "uneven and twice"],
)
def test_bad_cluster_ports_list_every_error(ports, controller_ports, errors):
    with pytest.raises(ClusterLayoutError) as caught:
        cluster_layout(ports, controller_ports)
    assert caught.value.errors == errors


def cli(*args: str, env: dict | None = None):
    return CliRunner().invoke(app, list(args), env=env)


def test_kafka_cluster_with_bad_ports_lists_every_error_and_starts_nothing():
    result = cli("kafka", "cluster", "up", env={"KAFKA_CLUSTER_PORTS": "19092,19092,x"})
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr.splitlines() == [
        "KAFKA_CLUSTER_PORTS, KAFKA_CLUSTER_CONTROLLER_PORTS: 2 error(s)",
        "  KAFKA_CLUSTER_PORTS: 'x' is not a port (1-65535)",
        "  port 19092 is given twice",
    ]


def test_kafka_cluster_status_and_down_of_a_cluster_that_does_not_run(tmp_path):
    ports = free_ports(6)
    env = {
        "KAFKA_CLUSTER_PORTS": ",".join(map(str, ports[:3])),
        "KAFKA_CLUSTER_CONTROLLER_PORTS": ",".join(map(str, ports[3:])),
        "KAFKA_CLUSTER_DATA": str(tmp_path),
    }
    status = cli("kafka", "cluster", "status", env=env)
    assert status.exit_code == 1
    assert status.stdout.splitlines() == [
        f"broker {n}: 127.0.0.1:{ports[n - 1]} not running" for n in (1, 2, 3)
    ]
    down = cli("kafka", "cluster", "down", env=env)
    assert down.exit_code == 0 and down.stdout == "kafka cluster was not running\n"


def test_topics_create_for_an_undeclared_deployment_is_refused_before_the_broker_is_asked():
    result = cli("topics", "create", "-b", "127.0.0.1:1", "--deployment", "prod")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert result.stderr == "error: --deployment: unknown deployment 'prod' (declared: single, cluster)\n"
