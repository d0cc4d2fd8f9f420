"""Pipeline options operators expect, shared by tocsin's Beam jobs, and how the jobs read their arguments.

The Kafka connection options are tocsin.config.KafkaSettings' fields, as the typer commands' are:
`--bootstrap-servers`, and `--kafka-<field>` for the others (security, client id), but the secrets, of
which only the files are flags (`--kafka-sasl-password-file`). Each is None when not
given, so that TOCSIN_KAFKA_<FIELD> and then the model's default apply (kafka_client_config), exactly as
for `tocsin topics create` or `tocsin router serve`.
"""

from __future__ import annotations

import argparse
import os
import sys
import typing
from collections.abc import Callable
from typing import TypeVar

from apache_beam.options.pipeline_options import PipelineOptions
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_delay, wait_exponential

from tocsin.cli_errors import KAFKA_UNREACHABLE, fail, kafka_unreachable_line
from tocsin.cli_options import refuse_secret_flags, start_metrics
from tocsin.config import KAFKA_SECRETS, KafkaSettings, SerializationSettings
from tocsin.durations import parse_duration_or_zero
from tocsin.kafka.topics import DEAD_LETTERS
from tocsin.runners import batch_options, streaming_options
from tocsin.serde import wire
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import DEFAULT_METRICS_ADDRESS, METRICS_ADDRESS_ENV
from tocsin.validation import error_messages

T = TypeVar("T")

# Every Kafka setting is a job flag too, but the bootstrap timeout (TOCSIN_KAFKA_BOOTSTRAP_TIMEOUT or its
# default): a job's first broker contact fails as fast as the CLI's; and the secrets, which come from
# their files (--kafka-sasl-password-file) or their environment variables only: a command line is read
# by every user of the machine in `ps`, and Beam sends its pipeline options to the runner and workers.
JOB_KAFKA_FIELDS = tuple(
    name for name in KafkaSettings.model_fields if name != "bootstrap_timeout" and name not in KAFKA_SECRETS
)
# Beam declares --bootstrap_servers itself (Kafka Streams runner options), which KafkaOptions cannot
# declare again: parse_job_args hands that spelling to the dashed one.
_BEAM_SPELLING = "--bootstrap_servers"


def _dest(name: str) -> str:
    return name if name == "bootstrap_servers" else f"kafka_{name}"


def _flag(name: str) -> str:
    return "--bootstrap-servers" if name == "bootstrap_servers" else f"--kafka-{name.replace('_', '-')}"


def _choices(annotation) -> list[str] | None:
    for candidate in (annotation, *typing.get_args(annotation)):
        if typing.get_origin(candidate) is typing.Literal:
            return list(typing.get_args(candidate))
    return None


def _add_kafka_settings(add) -> None:
    for name in JOB_KAFKA_FIELDS:
        field = KafkaSettings.model_fields[name]
        default = "" if field.default is None else f" [default: {field.default}]"
        flags = (_flag(name), "-b") if name == "bootstrap_servers" else (_flag(name),)  # as every command
        add(
            *flags,
            dest=_dest(name),
            default=None,
            choices=_choices(field.annotation),
            help=f"{field.description}{default} [env: TOCSIN_KAFKA_{name.upper()}]",
        )


class KafkaOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add = parser.add_argument
        _add_kafka_settings(add)
        add(
            "--group-id",
            "--group_id",
            dest="group_id",
            default=None,
            help="Consumer group whose committed offsets the job resumes from",
        )
        add(
            "--start",
            default="committed",
            help="Where to start: committed (then earliest), earliest, latest, timestamp:<epoch ms>",
        )
        add(
            "--idle-timeout",
            "--idle_timeout",
            dest="idle_timeout",
            type=duration_arg,
            default=10,
            help="How long without records before a partition stops holding the watermark back "
            "(a duration: 10s, 2m)",
        )
        add(
            "--close-when-idle",
            "--close_when_idle",
            dest="close_when_idle",
            action="store_true",
            default=False,
            help="Replays of finished data: once a partition is fully read and idle, move its watermark "
            "to its latest event time (not that minus the out-of-orderness; window-count: past its "
            "last window), so the windows its data fills close",
        )
        add(
            "--max-out-of-orderness",
            "--max_out_of_orderness",
            dest="max_out_of_orderness",
            type=duration_arg,
            default=5,
            help="Event-time disorder tolerated before a record counts as late (a duration: 5s, 1h)",
        )
        add(
            "--broker-wait",
            "--broker_wait",
            dest="broker_wait",
            type=duration_arg,
            default=30,
            help="How long the job retries a broker that does not answer at start, with backoff, before "
            "it exits (a duration; 0s: at once)",
        )
        add(
            "--source-shards",
            "--source_shards",
            dest="source_shards",
            type=int,
            default=1,
            help="Kafka readers, each serving a share of the partitions (more only on a distributed runner "
            "such as Flink; on Prism keep 1, see ReadFromKafka)",
        )
        add(
            "--dead-letter-topic",
            "--dead_letter_topic",
            dest="dead_letter_topic",
            default=DEAD_LETTERS,
            help=f"Dead-letter topic (default {DEAD_LETTERS})",
        )
        for name, field in SerializationSettings.model_fields.items():  # the typer commands' two flags
            add(
                f"--{name.replace('_', '-')}",
                f"--{name}",
                dest=name,
                default=None,
                choices=_choices(field.annotation),
                help=f"{field.description} [env: TOCSIN_{name.upper()}]",
            )
        add(
            "--metrics-port",
            "--metrics_port",
            dest="metrics_port",
            type=int,
            default=None,
            help="Serve Prometheus /metrics on this port (0: a free one)",
        )
        add(
            "--metrics-address",
            "--metrics_address",
            dest="metrics_address",
            default=os.environ.get(METRICS_ADDRESS_ENV) or DEFAULT_METRICS_ADDRESS,
            help=f"Address /metrics listens on, with --metrics-port (0.0.0.0: every interface, as in "
            f"tocsin's container image) [default: {DEFAULT_METRICS_ADDRESS}] [env: {METRICS_ADDRESS_ENV}]",
        )


class JobArgumentParser(argparse.ArgumentParser):
    """A job's own arguments. A mistake is one line naming the flag, exit status 2, without the usage
    (pages of it for the indicator job) that argparse prints first: `--help` shows it."""

    def error(self, message: str):
        fail(f"{self.prog}: error: {message}", code=2)


def duration_arg(text: str) -> int:
    """argparse type of a duration flag: whole seconds, typed once at parse ('0' allowed: none)."""
    try:
        return parse_duration_or_zero(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def parse_job_args(parser, argv: list[str] | None):
    """(the job's own arguments, the rest for Beam). The Kafka options are pipeline options, parsed by
    Beam; --help shows them with the job's all the same."""
    refuse_secret_flags(argv if argv is not None else sys.argv[1:], parser.prog)
    if argv is not None and ("-h" in argv or "--help" in argv):
        KafkaOptions._add_argparse_args(parser.add_argument_group("Kafka (pipeline options)"))
        parser.epilog = "Any Beam pipeline option (--runner, --parallelism, ...) is passed to the runner."
    known, rest = parser.parse_known_args(argv)
    return known, [
        "--bootstrap-servers" + arg.removeprefix(_BEAM_SPELLING)
        if arg == _BEAM_SPELLING or arg.startswith(_BEAM_SPELLING + "=")
        else arg
        for arg in rest
    ]


def kafka_client_config(opts: KafkaOptions) -> dict:
    """kafka-python's client settings of a job: its Kafka options, else TOCSIN_KAFKA_*, else the
    defaults (KafkaSettings; pydantic's ValidationError, a ValueError, for a bad environment value)."""
    given = {name: getattr(opts, _dest(name)) for name in JOB_KAFKA_FIELDS}
    return KafkaSettings(**{k: v for k, v in given.items() if v is not None}).client_config()


def job_options(parser, beam_args: list[str], streaming: bool = True):
    """(pipeline options, their KafkaOptions view, kafka-python client settings) of a job. A runner
    that is not built, a runner flag without its value, or a bad TOCSIN_KAFKA_* value is one line."""
    try:
        options = streaming_options(beam_args) if streaming else batch_options(beam_args)
        opts = options.view_as(KafkaOptions)
        client = kafka_client_config(opts)
        # The job's wire format, for every encode and decode of this process (Prism and Flink run the
        # SDK workers here, LOOPBACK); flags, else TOCSIN_SERIALIZATION / TOCSIN_SCHEMA_REGISTRY_URL.
        given = {name: getattr(opts, name) for name in SerializationSettings.model_fields}
        try:
            wire.configure(SerializationSettings(**{k: v for k, v in given.items() if v is not None}))
        except ValidationError as error:  # the typer commands' line (tocsin.cli_options), the job's prefix
            lines = (m.removeprefix("<root>: ") for m in error_messages(error))
            fail(f"{parser.prog}: error: {'; '.join(lines)}")
        return options, opts, client
    except ValidationError as error:  # the whole-model checks read as the sentences they are
        lines = (m.removeprefix("<root>: ") for m in error_messages(error))
        fail(f"{parser.prog}: error: Kafka settings: {'; '.join(lines)}")
    except (FileNotFoundError, ValueError) as error:
        fail(f"{parser.prog}: error: {error}")


def serve_job_metrics(parser, opts: KafkaOptions) -> int | None:
    """The job's /metrics on --metrics-address:--metrics-port (the port bound; None without a port), or one
    line naming both flags and exit status 1 (as the typer commands' tocsin.cli_options.start_metrics)."""
    return start_metrics(opts.metrics_port, opts.metrics_address, prefix=f"{parser.prog}: error")


def when_kafka_answers(client: dict, wait_s: int, read: Callable[[], T], what: str) -> T:
    """`read()`, what a job reads from Kafka before it starts, tried again while the broker does not
    answer, for up to `wait_s` (a broker restarting, a cluster still starting): each wait is logged, with
    backoff (1 s, 2 s, 4 s... at most 10 s). Then no broker is one line and a non-zero exit."""
    servers = ",".join(client["bootstrap_servers"])

    def waiting(state: RetryCallState) -> None:
        get_logger(stage="pipeline").warning(
            "kafka not answering, retrying",
            what=what,
            bootstrap=servers,
            attempt=state.attempt_number,
            retry_in_s=round(state.next_action.sleep, 1) if state.next_action else None,
            waited_s=round(state.seconds_since_start or 0.0, 1),
            broker_wait_s=wait_s,
        )

    retrying = Retrying(
        retry=retry_if_exception_type(KAFKA_UNREACHABLE),
        stop=stop_after_delay(wait_s),
        wait=wait_exponential(multiplier=1, max=10),
        before_sleep=waiting,
        reraise=True,
    )
    try:
        return retrying(read)
    except KAFKA_UNREACHABLE as error:
        fail(kafka_unreachable_line(servers, error))
