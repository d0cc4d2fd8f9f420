"""A single-node Apache Kafka broker (KRaft, combined broker/controller) on loopback.

The broker's jars are fetched by Maven (`deploy/kafka/pom.xml`, `make kafka-fetch`) into a cache folder;
this module formats the storage once, starts the JVM in the background, waits until the broker answers
a metadata request, and stops it by the pid it recorded. It is what `make kafka-up`, the test suite and
the demo use; production deployments point tocsin at their own cluster instead.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

log = structlog.get_logger("tocsin.kafka.local_broker")

KAFKA_VERSION = "4.1.1"


class BrokerError(RuntimeError):
    """The local broker could not be started, reached or stopped."""


@dataclass(frozen=True)
class LocalBroker:
    """Where the broker's jars are, where it keeps its data, and which loopback ports it listens on."""

    libs_dir: Path
    data_dir: Path
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

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
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=PLAINTEXT",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
                f"log.dirs={self.data_dir / 'kraft-logs'}",
                # Single node: every internal topic has one replica.
                "offsets.topic.replication.factor=1",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
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
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
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
        for port in (self.port, self.controller_port):
            if _port_in_use(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is already in use by another process; "
                    "choose another with KAFKA_PORT / KAFKA_CONTROLLER_PORT"
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
        try:
            self.wait_ready(timeout, proc)
        except BrokerError:
            self.stop()
            raise
        return proc.pid

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
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
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
        return True

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
