"""Apache Kafka on loopback (KRaft, combined broker/controller nodes): one broker, or a cluster of them.

The broker's jars are fetched by Maven (`deploy/kafka/pom.xml`, `make kafka-fetch`) into a cache folder;
this module formats the storage once, starts the JVM in the background, waits until the broker answers
a metadata request, and stops it by the pid it recorded. It is what `make kafka-up`, the test suite and
the demo use; production deployments point tocsin at their own cluster instead.

`LocalCluster` is several `LocalBroker`s that are the voters of one controller quorum (`make
kafka-cluster-up`, the broker-kill test): each its own process, data dir and ports, all formatted with
one cluster id, the internal topics replicated on all of them.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from tocsin.validation import ConfigErrors

log = structlog.get_logger("tocsin.kafka.local_broker")

KAFKA_VERSION = "4.1.1"


class BrokerError(RuntimeError):
    """The local broker could not be started, reached or stopped."""


@dataclass(frozen=True)
class LocalBroker:
    """Where the broker's jars are, where it keeps its data, and which loopback ports it listens on.

    Alone by default (node 1, the only voter, internal topics with one replica); a LocalCluster makes
    each of its nodes with the quorum's voters, the replicas of the internal topics and the cluster id.
    """

    libs_dir: Path
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    node_id: int = 1
    voters: str | None = None  # controller.quorum.voters; None: this node alone
    replicas: int = 1  # replicas of the internal topics (consumer offsets, transaction state)
    min_insync: int = 1  # in-sync replicas a write to the transaction state needs
    cluster_id: str | None = None  # None: a new random id when the storage is formatted

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def quorum_voters(self) -> str:
        return self.voters or f"{self.node_id}@127.0.0.1:{self.controller_port}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "broker.pid"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "server.log"

    # -- configuration --------------------------------------------------------------------------

    def server_properties(self) -> str:
        return "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={self.node_id}",
                f"controller.quorum.voters={self.quorum_voters}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir / 'kraft-logs'}",
                # The internal topics on as many brokers as there are (one alone): a group's commits and
                # a connector's transactions outlive the broker that coordinated them.
                f"offsets.topic.replication.factor={self.replicas}",
                f"transaction.state.log.replication.factor={self.replicas}",
                f"transaction.state.log.min.isr={self.min_insync}",
                f"share.coordinator.state.topic.replication.factor={self.replicas}",
                f"share.coordinator.state.topic.min.isr={self.min_insync}",
                "group.initial.rebalance.delay.ms=0",
                # Topics are declared by tocsin (tocsin topics create), never created by a typo.
                "auto.create.topics.enable=false",
                "num.partitions=1",
                "",
            ]
        )

    def log4j_properties(self) -> str:
        return "\n".join(
            [
                "status = warn",
                "appender.file.type = File",
                "appender.file.name = FILE",
                f"appender.file.fileName = {self.log_file}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = [%d] %p %m (%c)%n",
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "logger.kafka.name = kafka",
                "logger.kafka.level = WARN",
                "logger.state.name = state.change.logger",
                "logger.state.level = WARN",
                "",
            ]
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def _java_cmd(self, main_class: str, *args: str) -> list[str]:
        if not self.libs_dir.is_dir() or not any(self.libs_dir.glob("kafka_2.13-*.jar")):
            raise BrokerError(
                f"Kafka jars not found in {self.libs_dir}: run `make kafka-fetch` (needs Maven and Java 17)"
            )
        return [
            os.environ.get("JAVA", "java"),
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.data_dir / 'log4j2.properties'}",
            "-cp",
            f"{self.libs_dir}/*",
            main_class,
            *args,
        ]

    def running_pid(self) -> int | None:
        """The pid of the broker this data dir belongs to, if that process is alive."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and b"kafka.Kafka" not in cmdline.read_bytes():
            return None  # the pid was recycled by an unrelated process
        return pid

    def format_storage(self) -> None:
        """Format KRaft storage once; an already formatted data dir is left as it is."""
        if (self.data_dir / "kraft-logs" / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        cmd = self._java_cmd(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            # One argument: a random id may start with '-' (URL-safe base64), which the tool's
            # parser took for an option when the id came as the next argument (1 start in 64 failed).
            f"--cluster-id={cluster_id}",
            "-c",
            str(self.config_file),
        )
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise BrokerError(
                f"formatting KRaft storage failed: {result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self, timeout: float = 90.0) -> int:
        """Start the broker unless it already runs from this data dir; return its pid."""
        pid = self.running_pid()
        if pid is not None:
            log.info("broker already running", pid=pid, bootstrap=self.bootstrap_servers)
            self.wait_ready(timeout)
            return pid
        proc = self.launch()
        try:
            self.wait_ready(timeout, proc)
        except BrokerError:
            self.stop()
            raise
        return proc.pid

    def launch(self) -> subprocess.Popen:
        """Start the broker's JVM and return at once, without waiting for it to answer: a node of a
        cluster answers only once a majority of the quorum runs, so a cluster launches them all first."""
        for port in (self.port, self.controller_port):
            if _port_in_use(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is already in use by another process; choose another with "
                    + (
                        "KAFKA_CLUSTER_PORTS / KAFKA_CLUSTER_CONTROLLER_PORTS"
                        if self.voters
                        else "KAFKA_PORT / KAFKA_CONTROLLER_PORT"
                    )
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self.server_properties())
        (self.data_dir / "log4j2.properties").write_text(self.log4j_properties())
        self.format_storage()
        stdout = open(self.data_dir / "broker.out", "ab")
        proc = subprocess.Popen(
            self._java_cmd("kafka.Kafka", str(self.config_file)),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the command that started it; stopped by pid
        )
        self.pid_file.write_text(str(proc.pid))
        log.info(
            "broker starting", pid=proc.pid, bootstrap=self.bootstrap_servers, data_dir=str(self.data_dir)
        )
        return proc

    def wait_ready(self, timeout: float, proc: subprocess.Popen | None = None) -> None:
        """Block until the broker answers a metadata request (not merely until its port opens)."""

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                raise BrokerError(f"broker exited with code {proc.returncode}; see {self.log_file}")
            if _port_in_use(self.port):
                try:
                    admin = KafkaAdminClient(
                        bootstrap_servers=self.bootstrap_servers, request_timeout_ms=5000
                    )
                    try:
                        admin.describe_cluster()
                        return
                    finally:
                        admin.close()
                except (KafkaError, OSError) as exc:
                    last_error = exc
            time.sleep(0.5)
        raise BrokerError(f"broker did not answer within {timeout:.0f}s (last error: {last_error})")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the broker by its pid (SIGTERM, then SIGKILL); return whether one was running."""
        pid = self.terminate()
        if pid is None:
            return False
        self.wait_stopped(pid, time.monotonic() + timeout)
        return True

    def terminate(self) -> int | None:
        """SIGTERM the broker without waiting (a cluster stops its nodes together); its pid, or None."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return None
        os.kill(pid, signal.SIGTERM)
        return pid

    def wait_stopped(self, pid: int, deadline: float) -> None:
        """Wait until the terminated broker `pid` has ended; SIGKILL it at the deadline."""
        while time.monotonic() < deadline:
            if self.running_pid() is None:
                break
            _reap(pid)
            time.sleep(0.2)
        else:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("broker stopped", pid=pid)

    def kill(self, timeout: float = 10.0) -> bool:
        """SIGKILL the broker (a crash, as the fault tests inject it; `start()` brings it back on the
        same data dir, which it recovers); return whether one was running."""
        pid = self.running_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.running_pid() is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)
        log.info("broker killed", pid=pid)
        return True


def new_cluster_id() -> str:
    """A random KRaft cluster id: a UUID's 16 bytes in URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


# The fewest brokers a cluster may have: with three, one can be down and the controller quorum keeps its
# majority and every partition two in-sync replicas (the `cluster` deployment's min ISR, topics.yaml).
MIN_CLUSTER_SIZE = 3


@dataclass(frozen=True)
class LocalCluster:
    """Brokers of one KRaft cluster on loopback, each a LocalBroker and a voter of the controller quorum:
    node n (from 1) listens on ports[n-1] and controller_ports[n-1] and keeps its data in
    data_dir/node-<n>; the cluster id, shared by all, in data_dir/cluster.id."""

    libs_dir: Path
    data_dir: Path
    ports: tuple[int, ...]
    controller_ports: tuple[int, ...]
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def cluster_id_file(self) -> Path:
        return self.data_dir / "cluster.id"

    def nodes(self) -> list[LocalBroker]:
        voters = ",".join(f"{n}@127.0.0.1:{port}" for n, port in enumerate(self.controller_ports, start=1))
        cluster_id = self.cluster_id_file.read_text().strip() if self.cluster_id_file.exists() else None
        size = len(self.ports)
        pairs = zip(self.ports, self.controller_ports, strict=True)
        return [
            LocalBroker(
                libs_dir=self.libs_dir,
                data_dir=self.data_dir / f"node-{n}",
                port=port,
                controller_port=controller_port,
                heap=self.heap,
                node_id=n,
                voters=voters,
                replicas=size,
                min_insync=size // 2 + 1,  # a majority, as the quorum's: 2 of 3
                cluster_id=cluster_id,
            )
            for n, (port, controller_port) in enumerate(pairs, start=1)
        ]

    def node(self, node_id: int) -> LocalBroker:
        return self.nodes()[node_id - 1]

    def running_pids(self) -> dict[int, int | None]:
        """Each node's pid, None for a node that does not run."""
        return {node.node_id: node.running_pid() for node in self.nodes()}

    def start(self, timeout: float = 120.0) -> dict[int, int]:
        """Start every node that does not run yet, then wait until each answers and the cluster lists
        them all (so a topic with a replica on each can be created); each node's pid."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if not self.cluster_id_file.exists():  # before the first format: every node takes this id
            self.cluster_id_file.write_text(new_cluster_id())
        nodes = self.nodes()
        launched: dict[int, subprocess.Popen] = {}
        try:
            # Together: each launch formats its storage first, a JVM of its own that takes seconds.
            idle = [node for node in nodes if node.running_pid() is None]
            with ThreadPoolExecutor(max_workers=max(len(idle), 1)) as pool:
                futures = {node.node_id: pool.submit(node.launch) for node in idle}
            for node_id, future in futures.items():
                if future.exception() is None:
                    launched[node_id] = future.result()
            for future in futures.values():
                if future.exception() is not None:
                    raise future.exception()
            deadline = time.monotonic() + timeout
            for node in nodes:
                node.wait_ready(max(deadline - time.monotonic(), 1.0), launched.get(node.node_id))
            self.wait_complete(deadline)
        except BaseException:  # whatever stopped the start (an interrupt too), no broker is left behind
            _stop_together([node for node in nodes if node.node_id in launched])
            raise
        return {node.node_id: node.running_pid() for node in nodes}

    def wait_complete(self, deadline: float) -> None:
        """Block until the cluster's metadata lists every node as a broker."""
        wanted, found, last_error = set(range(1, len(self.ports) + 1)), set(), None
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap_servers.split(","), request_timeout_ms=5000
                )
                try:
                    found = {broker["broker_id"] for broker in admin.describe_cluster()["brokers"]}
                finally:
                    admin.close()
                if found == wanted:
                    return
            except (KafkaError, OSError) as exc:
                last_error = exc
            time.sleep(0.5)
        raise BrokerError(
            f"the cluster listed brokers {sorted(found)} of {sorted(wanted)} in time (last: {last_error})"
        )

    def stop(self, timeout: float = 60.0) -> bool:
        """Stop every node; return whether any was running."""
        return _stop_together(self.nodes(), timeout)


def _stop_together(nodes: list[LocalBroker], timeout: float = 60.0) -> bool:
    """SIGTERM the nodes at once, then wait for all: stopped one after another, the last ones would wait
    for a controller quorum that has already lost its majority before they shut down."""
    pids = [(node, node.terminate()) for node in nodes]
    deadline = time.monotonic() + timeout
    for node, pid in pids:
        if pid is not None:
            node.wait_stopped(pid, deadline)
    return any(pid is not None for _, pid in pids)


class ClusterLayoutError(ConfigErrors):
    kind = "local cluster settings"


def cluster_layout(ports: str, controller_ports: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The brokers' and the controllers' ports of a LocalCluster from their comma-separated lists
    (KAFKA_CLUSTER_PORTS, KAFKA_CLUSTER_CONTROLLER_PORTS); ClusterLayoutError lists every problem."""
    problems: list[str] = []
    lists: list[list[int]] = []
    for name, text in (("KAFKA_CLUSTER_PORTS", ports), ("KAFKA_CLUSTER_CONTROLLER_PORTS", controller_ports)):
        items = [item.strip() for item in text.split(",")]
        bad = [item for item in items if not (item.isdigit() and 1 <= int(item) <= 65535)]
        problems += [f"{name}: {item!r} is not a port (1-65535)" for item in bad]
        lists.append([int(item) for item in items if item not in bad])
    brokers, controllers = lists
    if not problems:  # the counts of lists with a bad item would say nothing more
        if len(brokers) < MIN_CLUSTER_SIZE:
            problems.append(
                f"KAFKA_CLUSTER_PORTS: {len(brokers)} broker(s); a cluster has {MIN_CLUSTER_SIZE} or "
                "more, so that one can be down"
            )
        if len(controllers) != len(brokers):
            problems.append(
                f"KAFKA_CLUSTER_CONTROLLER_PORTS: {len(controllers)} port(s) for {len(brokers)} "
                "brokers: one each"
            )
    every = brokers + controllers
    problems += [f"port {port} is given twice" for port in sorted({p for p in every if every.count(p) > 1})]
    if problems:
        raise ClusterLayoutError(problems)
    return tuple(brokers), tuple(controllers)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """n distinct free ports: each socket is held until all are bound (free_port() n times may repeat)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
