"""What the bench observes from outside a system: its processes' CPU and memory, and its output topic.

Both are measured the same way for every system, so no system reports on itself (the raw ceilings
excepted: they time their own consume loop, see jobs/raw_consume.py). psutil is not in tocsin's venv,
so the process tree is read from /proc directly.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: int) -> tuple[int, int, int, float] | None:
    """(ppid, session id, start time, cpu seconds) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid, sid = int(fields[1]), int(fields[3])
    utime, stime, start = int(fields[11]), int(fields[12]), int(fields[19])
    return ppid, sid, start, (utime + stime) / _TICK


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _reaped_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ProcessTree:
    """A system's processes: the one started (in a session of its own) and everything it spawned.

    `sample()` (every 0.2 s) records the summed RSS of the tree at that instant and each process's CPU
    time so far; a process's CPU is kept after it exits, so short-lived helpers still count (up to the
    last 0.2 s of their life). CPU of the tree = the sum over every process ever seen."""

    root: int
    cpu_by_process: dict[tuple[int, int], float] = field(default_factory=dict)
    names: dict[tuple[int, int], str] = field(default_factory=dict)
    peak_rss: int = 0
    peak_rss_by_name: dict[str, int] = field(default_factory=dict)  # the tree at its peak, by command
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (monotonic, cpu s, rss)

    def members(self) -> list[int]:
        stats = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _stat(int(entry))
                if st:
                    stats[int(entry)] = st
        # In the tree: the root's session (children that stay in it) plus descendants by parent links
        # (children that started sessions of their own, as a JVM or Go runner might).
        tree = {pid for pid, st in stats.items() if st[1] == self.root or pid == self.root}
        grew = True
        while grew:
            new = {pid for pid, st in stats.items() if st[0] in tree and pid not in tree}
            tree |= new
            grew = bool(new)
        self._stats = stats
        return sorted(tree)

    def sample(self) -> None:
        by_name: dict[str, int] = {}
        for pid in self.members():
            ppid, sid, start, cpu = self._stats[pid]
            if (pid, start) not in self.names:
                self.names[(pid, start)] = _name(pid)
            self.cpu_by_process[(pid, start)] = cpu
            name = self.names[(pid, start)]
            by_name[name] = by_name.get(name, 0) + _rss_bytes(pid)
        rss = sum(by_name.values())
        if rss > self.peak_rss:
            self.peak_rss, self.peak_rss_by_name = rss, by_name
        self.samples.append((time.monotonic(), self.cpu_seconds(), rss))

    def cpu_by_name(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for proc, cpu in self.cpu_by_process.items():
            out[self.names[proc]] = out.get(self.names[proc], 0.0) + cpu
        return out

    def figures(self) -> dict:
        """CPU and memory of the whole run, also split by command (tocsin: python and prism)."""
        return {
            "cpu_s_total": self.cpu_seconds(),
            "cpu_s_by_process": {k: round(v, 2) for k, v in self.cpu_by_name().items()},
            "peak_rss_mb": self.peak_rss / 2**20,
            "peak_rss_mb_by_process": {k: round(v / 2**20) for k, v in self.peak_rss_by_name.items()},
        }

    def cpu_seconds(self) -> float:
        return sum(self.cpu_by_process.values())

    def cpu_between(self, t0: float, t1: float) -> float | None:
        """CPU seconds spent between two instants, from the samples nearest to them."""
        if not self.samples:
            return None
        at = lambda t: min(self.samples, key=lambda s: abs(s[0] - t))[1]  # noqa: E731
        return at(t1) - at(t0)


class SystemProcess:
    """A system's command in a session of its own, output to `log`; leaving the `with` block samples
    once more and ends the whole tree (SIGTERM, then SIGKILL after a grace period)."""

    def __init__(self, cmd: list[str], log: Path, cwd: Path, env: dict | None = None):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log
        self._log = open(log, "w")
        self.started = time.monotonic()
        self._children_before = _reaped_cpu()
        self.cpu_reaped = 0.0
        self.proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            start_new_session=True,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        self.tree = ProcessTree(self.proc.pid)

    def running(self) -> bool:
        return self.proc.poll() is None

    def __enter__(self) -> SystemProcess:
        return self

    def __exit__(self, *exc) -> None:
        if self.running():
            self.tree.sample()
        pids = self.tree.members() if self.running() else []
        self._signal(pids, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._signal(pids, signal.SIGKILL)
        self.proc.wait()
        self._log.close()
        # The kernel's exact count for the child and whatever it reaped itself: complete for a
        # process that ends on its own (the raw ceilings), short of killed grandchildren otherwise.
        self.cpu_reaped = _reaped_cpu() - self._children_before

    def _signal(self, pids: list[int], sig: int) -> None:
        # Only the processes of this system's own tree, by pid: never anything by name.
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class OutputReader:
    """Reads a system's output topic from the beginning (read_committed, so a transactional sink's
    aborted or open writes are not counted) and records when each window record arrived."""

    bootstrap: str
    topic: str
    latest: dict[str, dict] = field(default_factory=dict)  # output key -> its latest JSON value
    first_arrival: float | None = None
    last_arrival: float | None = None
    first_batch: list[dict] = field(default_factory=list)  # the windows of the first fetch
    records: int = 0

    def __post_init__(self) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self._consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            enable_auto_commit=False,
            isolation_level="read_committed",
            fetch_max_wait_ms=100,
        )
        parts = self._consumer.partitions_for_topic(self.topic) or {0}
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        self._consumer.seek_to_beginning(*tps)

    def poll(self, timeout_ms: int = 200) -> int:
        """Fetch what has arrived; return how many window records (not `__end__` ones) came."""
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=10_000)
        now = time.monotonic()
        new = 0
        fresh = []
        for records in batches.values():
            for record in records:
                self.records += 1
                key = record.key.decode() if record.key else ""
                try:
                    value = json.loads(record.value)
                except (TypeError, ValueError):
                    continue
                if not key or key.startswith("__end__"):
                    continue
                if isinstance(value, dict) and value.get("diff") == -1:
                    continue  # a retraction (Pathway's output carries diff=±1): the next insert replaces it
                self.latest[key] = value
                fresh.append(value)
                new += 1
        if new:
            if self.first_arrival is None:
                self.first_arrival = now
                self.first_batch = fresh
            self.last_arrival = now
        return new

    def close(self) -> None:
        self._consumer.close()
