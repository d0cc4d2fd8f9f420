"""The systems compared, the two jobs, and the command line that runs each system on a job.

tocsin runs from tocsin's venv; every peer runs its script in jobs/ with the python of its own venv
(venvs.py). The raw ceilings are not windowed jobs: they run once per round, whatever the job.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
JOBS_DIR = HERE / "jobs"
TOCSIN_VENV = ROOT / ".venv"


@dataclass(frozen=True)
class Job:
    name: str
    title: str
    size_ms: int
    step_ms: int
    window: str  # the window as tocsin's --window writes it
    grace_ms: int = 5000


JOBS = {
    "A": Job("A", "60 s tumbling, 5 s grace", 60_000, 60_000, "60s"),
    "B": Job("B", "1 h sliding every 5 min, 5 s grace", 3_600_000, 300_000, "1h/5m"),
}


@dataclass(frozen=True)
class RunSpec:
    """Everything a command needs for one run."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group_id: str
    job: Job
    events: int  # scored events in the input topic
    records: int  # all its records (events + end markers), for the raw ceilings
    state_dir: Path
    dead_letter_topic: str


# tocsin's command, in this one place. The interface: --window takes '60s' or '1h/5m', the values
# are JSON with the event time in `ts`. TOCSIN_LEGACY is the CLI from before --window and
# --value-format: fixed windows in seconds, event time = the Kafka timestamp (the same value here),
# so only job A can run. `--tocsin-cli` on run.py chooses; `auto` asks `--help`.
TOCSIN_TEMPLATE = (
    "{tocsin} pipeline window-count --input-topic {input_topic} --output-topic {output_topic} "
    "--window {window} --max-out-of-orderness {grace_s}s --start earliest --group-id {group_id} "
    "--bootstrap-servers {bootstrap} --value-format json --event-time-field ts --metrics-port 0 "
    "--dead-letter-topic {dead_letter_topic}"
)
TOCSIN_LEGACY = (
    "{tocsin} pipeline window-count --input-topic {input_topic} --output-topic {output_topic} "
    "--window-seconds {window_seconds} --max-out-of-orderness {grace_s} --start earliest "
    "--group-id {group_id} --bootstrap-servers {bootstrap} --metrics-port 0 "
    "--dead-letter-topic {dead_letter_topic}"
)


def tocsin_cli_flavour() -> str:
    """'new' when this tocsin's window-count has --value-format and --window, else 'legacy'."""
    done = subprocess.run(
        [str(TOCSIN_VENV / "bin" / "tocsin"), "pipeline", "window-count", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    text = done.stdout + done.stderr
    return "new" if "--value-format" in text and "--window " in text.replace("--window-", "") else "legacy"


@dataclass(frozen=True)
class System:
    name: str
    label: str
    venv: str | None  # a peer venv (venvs.py), or None: tocsin's venv
    policy: str | None  # the truth policy it documents (data.py); None for the raw ceilings
    packages: tuple[str, ...]  # reported with their installed versions
    note: str

    @property
    def raw(self) -> bool:
        return self.policy is None

    def python(self) -> Path:
        from venvs import python_of

        return python_of(self.venv) if self.venv else TOCSIN_VENV / "bin" / "python"

    def command(self, spec: RunSpec, tocsin_cli: str = "new") -> list[str] | str:
        """The command, or a string saying why this system cannot run this job."""
        job = spec.job
        if self.name == "tocsin":
            if tocsin_cli == "legacy" and job.size_ms != job.step_ms:
                return "this tocsin CLI has no sliding windows (--window 1h/5m) yet"
            template = TOCSIN_TEMPLATE if tocsin_cli == "new" else TOCSIN_LEGACY
            return shlex.split(
                template.format(
                    tocsin=TOCSIN_VENV / "bin" / "tocsin",
                    input_topic=spec.input_topic,
                    output_topic=spec.output_topic,
                    window=job.window,
                    window_seconds=job.size_ms // 1000,
                    grace_s=job.grace_ms // 1000,
                    group_id=spec.group_id,
                    bootstrap=spec.bootstrap,
                    dead_letter_topic=spec.dead_letter_topic,
                )
            )
        if self.raw:
            client = "kafka-python" if self.name == "raw-kafka-python" else "confluent-kafka"
            return [
                str(self.python()),
                str(JOBS_DIR / "raw_consume.py"),
                "--client",
                client,
                "--bootstrap-servers",
                spec.bootstrap,
                "--topic",
                spec.input_topic,
                "--records",
                str(spec.records),
            ]
        return [
            str(self.python()),
            str(JOBS_DIR / f"{self.name}_job.py"),
            "--bootstrap-servers",
            spec.bootstrap,
            "--input-topic",
            spec.input_topic,
            "--output-topic",
            spec.output_topic,
            "--group-id",
            spec.group_id,
            "--size-ms",
            str(job.size_ms),
            "--step-ms",
            str(job.step_ms),
            "--grace-ms",
            str(job.grace_ms),
            "--state-dir",
            str(spec.state_dir),
        ]


SYSTEMS = {
    s.name: s
    for s in (
        System(
            "tocsin",
            "tocsin",
            None,
            "record",
            ("apache-beam", "kafka-python", "confluent-kafka"),
            "Beam on Prism; a record behind its partition's watermark (highest earlier event time - "
            "grace) is late and goes to the dead-letter topic",
        ),
        System(
            "quix",
            "Quix Streams",
            "quix",
            "window",
            ("quixstreams", "confluent-kafka"),
            "tumbling/hopping_window(grace_ms).count().final(closing_strategy='partition'); "
            "timestamp extractor on JSON ts",
        ),
        System(
            "bytewax",
            "Bytewax",
            "bytewax",
            "record-per-key",
            ("bytewax", "confluent-kafka"),
            "EventClock(ts, wait_for_system_duration=grace) per key; Tumbling/SlidingWindower; "
            "count_window; KafkaSource(tail=False): end of input closes the last windows",
        ),
        System(
            "pathway",
            "Pathway",
            "pathway",
            "window",
            ("pathway",),
            "windowby(tumbling/sliding, instance=key, exactly_once_behavior(shift=grace)); time = "
            "highest event time over all partitions, per minibatch: late handling depends on batching",
        ),
        System(
            "raw-kafka-python",
            "raw kafka-python",
            None,
            None,
            ("kafka-python",),
            "consume + json.loads of every value, tocsin's venv",
        ),
        System(
            "raw-confluent",
            "raw confluent-kafka",
            "raw",
            None,
            ("confluent-kafka",),
            "consume + json.loads of every value, librdkafka",
        ),
    )
}
