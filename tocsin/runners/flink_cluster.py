"""A local Flink 1.19 session cluster, and Beam's Flink job server submitting to it.

Three JVMs, each its own process: a JobManager (`StandaloneSessionClusterEntrypoint`), a TaskManager
(`TaskManagerRunner`, 2 task slots) and Beam's Flink job server (`FlinkJobServerDriver`, the jar `make
flink` builds) started with `--flink-master` at the JobManager's REST port. The cluster's jars are Flink's
modules from Maven Central (`deploy/flink-cluster/pom.xml`, `make flink-cluster-fetch`); its
configuration is generated here into `<work dir>/conf/config.yaml`, its logs go to `<work dir>/log`, its
temporary files, blobs and staged artifacts stay under the work dir. Every port is a free loopback port,
chosen at start and recorded with the pids in `<work dir>/cluster.json`, which is how `down` and `status`
find the processes again (each pid is checked against its command line before it is signalled).

A pipeline reaches it with `--runner=FlinkRunner --job_endpoint=localhost:<job port>` (the job server
here) or `--flink_master=localhost:<REST port>` (a job server of its own, started per launch). Its SDK
workers are LOOPBACK: threads of the launching Python process, which the TaskManager calls back on
loopback; without docker there is no other harness here (see deploy/worker.Dockerfile for Beam's).

This is what `make flink-cluster-up`/`-down` and the Flink cluster test use; a production deployment
runs its own Flink (see deploy/runners/flink.args).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import structlog
import yaml

from tocsin.kafka.local_broker import free_port

log = structlog.get_logger("tocsin.runners.flink_cluster")

FLINK_VERSION = "1.19.0"  # deploy/flink-cluster/pom.xml; the Flink of Beam's 2.62 Flink runner
JOBMANAGER = "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"
TASKMANAGER = "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"
JOB_SERVER = "job-server"
ROLES = ("jobmanager", "taskmanager", JOB_SERVER)
# What Flink's distribution opens to its JVMs on Java 17 (its default env.java.opts.all): Kryo and the
# closure cleaner reflect into these JDK packages.
JDK_OPENS = tuple(
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang",
        "java.lang.reflect",
        "java.io",
        "java.net",
        "java.nio",
        "java.text",
        "java.time",
        "java.util",
        "java.util.concurrent",
        "java.util.concurrent.atomic",
        "java.util.concurrent.locks",
        "sun.nio.ch",
    )
)
RESULT = "BASH_JAVA_UTILS_EXEC_RESULT:"


class FlinkClusterError(RuntimeError):
    """The local Flink cluster could not be started, reached or stopped (one line)."""


@dataclass(frozen=True)
class ClusterState:
    """Where a started cluster listens, and the pid of each of its processes."""

    rest_port: int
    rpc_port: int
    job_port: int
    pids: dict

    @property
    def flink_master(self) -> str:
        return f"localhost:{self.rest_port}"

    @property
    def job_endpoint(self) -> str:
        return f"localhost:{self.job_port}"

    def runner_flags(self) -> list[str]:
        """The pipeline options that run a tocsin job on this cluster through its job server."""
        return ["--runner=FlinkRunner", f"--job_endpoint={self.job_endpoint}", "--environment_type=LOOPBACK"]


@dataclass(frozen=True)
class LocalFlinkCluster:
    """The cluster's jars, Beam's job server jar, the folder it runs in, and its size."""

    Error = FlinkClusterError  # what its methods raise, for callers that import only the class

    lib_dir: Path
    job_server_jar: Path
    work_dir: Path
    slots: int = 2
    jobmanager_heap: str = "512m"
    task_heap: str = "384m"  # plus Flink's 128m framework heap: a 512m TaskManager heap
    job_server_heap: str = "512m"

    @property
    def state_file(self) -> Path:
        return self.work_dir / "cluster.json"

    @property
    def conf_dir(self) -> Path:
        return self.work_dir / "conf"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "log"

    # -- configuration --------------------------------------------------------------------------

    def config(self, rest_port: int, rpc_port: int) -> dict:
        """config.yaml: loopback only, fixed REST and RPC ports, every other port chosen by the OS."""
        tmp = self.work_dir / "tmp"
        return {
            "jobmanager.rpc.address": "localhost",
            "jobmanager.rpc.port": rpc_port,
            "jobmanager.bind-host": "localhost",
            "jobmanager.memory.heap.size": self.jobmanager_heap,
            "taskmanager.host": "localhost",
            "taskmanager.bind-host": "localhost",
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.task.heap.size": self.task_heap,
            # Beam keeps its state on the heap (hashmap backend): little managed memory is needed.
            "taskmanager.memory.managed.size": "64m",
            "taskmanager.memory.network.min": "64m",
            "taskmanager.memory.network.max": "64m",
            "taskmanager.rpc.port": "0",
            "taskmanager.data.port": 0,
            "rest.address": "localhost",
            "rest.bind-address": "localhost",
            "rest.port": rest_port,
            "blob.server.port": "0",
            "metrics.internal.query-service.port": "0",
            "parallelism.default": self.slots,
            # Beam's runner is on the cluster's classpath (deploy/flink-cluster/pom.xml): every class
            # from there, none from a job's jars, or each job would load Beam anew into metaspace.
            "classloader.resolve-order": "parent-first",
            "cluster.registration.error-delay": 1000,  # ms
            # A job whose LOOPBACK workers are gone (its launcher ended) cannot recover: a few restarts,
            # then it fails and frees its slots instead of restarting forever.
            "restart-strategy.type": "fixed-delay",
            "restart-strategy.fixed-delay.attempts": 3,
            "restart-strategy.fixed-delay.delay": "2 s",
            "io.tmp.dirs": str(tmp),
            "blob.storage.directory": str(self.work_dir / "blobs"),
            "web.tmpdir": str(tmp / "web"),
            "web.upload.dir": str(tmp / "web-upload"),
            "process.jobmanager.working-dir": str(self.work_dir / "jobmanager"),
            "process.taskmanager.working-dir": str(self.work_dir / "taskmanager"),
        }

    @staticmethod
    def log4j_properties() -> str:
        return "\n".join(
            [
                "rootLogger.level = INFO",
                "rootLogger.appenderRef.file.ref = FILE",
                "appender.file.name = FILE",
                "appender.file.type = File",
                "appender.file.fileName = ${sys:log.file}",
                "appender.file.layout.type = PatternLayout",
                "appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %c - %m%n",
                # One line per missing plugin folder and token provider is noise on a local cluster.
                "logger.plugins.name = org.apache.flink.core.plugin",
                "logger.plugins.level = ERROR",
                "logger.tokens.name = org.apache.flink.runtime.security.token",
                "logger.tokens.level = ERROR",
                "",
            ]
        )

    def write_conf(self, rest_port: int, rpc_port: int) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.conf_dir / "config.yaml").write_text(yaml.safe_dump(self.config(rest_port, rpc_port)))
        (self.conf_dir / "log4j.properties").write_text(self.log4j_properties())

    # -- commands -------------------------------------------------------------------------------

    def _check_jars(self) -> None:
        if not self.lib_dir.is_dir() or not any(self.lib_dir.glob(f"flink-runtime-{FLINK_VERSION}.jar")):
            raise FlinkClusterError(
                f"Flink {FLINK_VERSION} jars not found in {self.lib_dir}: run `make flink-cluster-fetch`"
                " (needs Maven and Java 17)"
            )
        if not self.job_server_jar.is_file():
            raise FlinkClusterError(
                f"Beam's Flink job server jar not found at {self.job_server_jar}: run `make flink`"
            )

    def _java(self) -> str:
        return os.environ.get("JAVA", "java")

    def _classpath(self) -> str:
        return f"{self.lib_dir}/*"

    def memory_flags(self) -> dict[str, tuple[list[str], list[str]]]:
        """{role: (JVM flags, dynamic -D properties)} of the JobManager and the TaskManager, computed from
        config.yaml by Flink's own BashJavaUtils as its start scripts do (both at once: each is a JVM)."""
        runs = {
            role: subprocess.Popen(
                [
                    self._java(),
                    "-cp",
                    self._classpath(),
                    "org.apache.flink.runtime.util.bash.BashJavaUtils",
                    command,
                    "--configDir",
                    str(self.conf_dir),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for role, command in (
                ("jobmanager", "GET_JM_RESOURCE_PARAMS"),
                ("taskmanager", "GET_TM_RESOURCE_PARAMS"),
            )
        }
        flags = {}
        for role, run in runs.items():
            stdout, stderr = run.communicate()
            lines = [line[len(RESULT) :] for line in stdout.splitlines() if line.startswith(RESULT)]
            if run.returncode != 0 or len(lines) < 2:
                detail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
                raise FlinkClusterError(f"Flink's memory settings for the {role} failed: {detail[0]}")
            flags[role] = (shlex.split(lines[-2]), shlex.split(lines[-1]))
        return flags

    def command(self, role: str, state: ClusterState, memory: dict | None = None) -> list[str]:
        """The command line of one of the cluster's processes (`memory`: what memory_flags() says)."""
        if role == JOB_SERVER:
            return [
                self._java(),
                f"-Xmx{self.job_server_heap}",
                *JDK_OPENS,
                # Its log (slf4j-simple) with the time of each line, as the cluster's own logs have.
                "-Dorg.slf4j.simpleLogger.showDateTime=true",
                "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS",
                "-jar",
                str(self.job_server_jar),
                "--flink-master",
                state.flink_master,
                "--job-host",
                "localhost",
                "--job-port",
                str(state.job_port),
                "--artifact-port",
                "0",
                "--expansion-port",
                "0",
                "--artifacts-dir",
                str(self.work_dir / "artifacts"),
            ]
        jvm, dynamic = (memory or self.memory_flags())[role]
        main = JOBMANAGER if role == "jobmanager" else TASKMANAGER
        return [
            self._java(),
            *jvm,
            *JDK_OPENS,
            f"-Dlog.file={self.log_dir / f'{role}.log'}",
            f"-Dlog4j.configurationFile={self.conf_dir / 'log4j.properties'}",
            "-cp",
            self._classpath(),
            main,
            "--configDir",
            str(self.conf_dir),
            *dynamic,
        ]

    # -- state ----------------------------------------------------------------------------------

    def _recorded(self) -> ClusterState | None:
        try:
            data = json.loads(self.state_file.read_text())
            return ClusterState(data["rest_port"], data["rpc_port"], data["job_port"], data["pids"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _record(self, state: ClusterState) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(
            json.dumps(
                {
                    "rest_port": state.rest_port,
                    "rpc_port": state.rpc_port,
                    "job_port": state.job_port,
                    "pids": state.pids,
                },
                indent=1,
            )
        )

    def _ours(self, pid: int | None, role: str) -> bool:
        """Whether `pid` is alive and is this work dir's `role` (not a recycled pid, not another cluster)."""
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            return False
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                if stat.read().rsplit(b")", 1)[-1].split()[0] == b"Z":
                    return False  # ended, not reaped yet
        except OSError:
            return False
        marker = str(self.work_dir / "artifacts") if role == JOB_SERVER else str(self.conf_dir)
        main = {"jobmanager": JOBMANAGER, "taskmanager": TASKMANAGER}.get(role, "--flink-master")
        args = [part.decode(errors="replace") for part in cmdline]
        return main in args and marker in args

    def status(self) -> tuple[ClusterState | None, dict]:
        """(the recorded state, {role: whether that process runs})."""
        state = self._recorded()
        if state is None:
            return None, dict.fromkeys(ROLES, False)
        return state, {role: self._ours(state.pids.get(role), role) for role in ROLES}

    def running(self) -> ClusterState | None:
        """The cluster's state when all three processes run, else None."""
        state, alive = self.status()
        return state if state is not None and all(alive.values()) else None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> ClusterState:
        """Start the cluster unless it already runs from this work dir; return where it listens."""
        state = self.running()
        if state is not None:
            log.info("flink cluster already running", rest=state.flink_master, job_server=state.job_endpoint)
            return state
        self.stop()  # what is left of an earlier cluster of this work dir, if anything
        self._check_jars()
        for folder in (self.log_dir, self.work_dir / "tmp", self.work_dir / "artifacts"):
            folder.mkdir(parents=True, exist_ok=True)
        state = ClusterState(free_port(), free_port(), free_port(), {})
        self.write_conf(state.rest_port, state.rpc_port)
        memory = self.memory_flags()
        deadline = time.monotonic() + timeout
        try:
            # All three at once: the TaskManager retries its registration until the JobManager answers
            # (every second: cluster.registration.error-delay), the job server only calls the REST port
            # when a job is submitted.
            procs = {role: self._launch(role, state, memory) for role in ROLES}
            self._wait(lambda: self._overview(state) is not None, "jobmanager", procs, deadline)
            self._wait(
                lambda: (self._overview(state) or {}).get("slots-total") == self.slots,
                "taskmanager",
                procs,
                deadline,
            )
            self._wait(lambda: _port_open(state.job_port), JOB_SERVER, procs, deadline)
        except BaseException:
            self.stop()
            raise
        log.info("flink cluster up", rest=state.flink_master, job_server=state.job_endpoint, pids=state.pids)
        return state

    def _launch(self, role: str, state: ClusterState, memory: dict) -> subprocess.Popen:
        out = open(self.log_dir / f"{role}.out", "ab")
        try:
            proc = subprocess.Popen(
                self.command(role, state, memory),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.work_dir,
                start_new_session=True,  # outlives the command that started it; stopped by pid
            )
        finally:
            out.close()
        state.pids[role] = proc.pid
        self._record(state)
        return proc

    def _wait(self, ready, role: str, procs: dict, deadline: float) -> None:
        """Until `ready()` (what `role` must answer); a process that exits meanwhile fails the start."""
        while time.monotonic() < deadline:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    raise FlinkClusterError(
                        f"the {name} exited at start (code {proc.returncode}); see {self.log_dir}/{name}.*"
                    )
            if ready():
                return
            time.sleep(0.5)
        raise FlinkClusterError(f"the {role} was not ready in time; see {self.log_dir}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the cluster's processes (SIGTERM, then SIGKILL); return whether any was running."""
        state, alive = self.status()
        if state is None:
            return False
        running = [(role, state.pids[role]) for role in reversed(ROLES) if alive[role]]
        for _role, pid in running:
            _signal(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for role, pid in running:
            while self._ours(pid, role) and time.monotonic() < deadline:
                _reap(pid)
                time.sleep(0.2)
            if self._ours(pid, role):
                _signal(pid, signal.SIGKILL)
                time.sleep(0.5)
            _reap(pid)
        self.state_file.unlink(missing_ok=True)
        if running:
            log.info("flink cluster stopped", pids=dict(running))
        return bool(running)

    # -- REST -----------------------------------------------------------------------------------

    def _overview(self, state: ClusterState) -> dict | None:
        try:
            return rest(state, "/overview")
        except FlinkClusterError:
            return None

    def jobs(self) -> list[dict]:
        """The cluster's jobs: {jid, name, state, ...} (Flink's /jobs/overview)."""
        state = self._recorded()
        if state is None:
            raise FlinkClusterError(f"no Flink cluster recorded in {self.work_dir}")
        return rest(state, "/jobs/overview")["jobs"]

    def cancel(self, jid: str) -> None:
        state = self._recorded()
        if state is None:
            raise FlinkClusterError(f"no Flink cluster recorded in {self.work_dir}")
        rest(state, f"/jobs/{jid}?mode=cancel", method="PATCH")


def rest(state: ClusterState, path: str, method: str = "GET") -> dict:
    """One call to the JobManager's REST API, as JSON."""
    request = urllib.request.Request(f"http://{state.flink_master}{path}", method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
    except (urllib.error.URLError, OSError) as error:
        raise FlinkClusterError(f"Flink REST {method} {path}: {error}") from None
    return json.loads(body) if body else {}


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
