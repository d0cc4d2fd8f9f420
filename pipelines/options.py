"""Pipeline options operators expect, shared by tocsin's Beam jobs."""

from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions


class KafkaOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add = parser.add_argument
        # Beam itself declares --bootstrap_servers (Kafka Streams runner); the spelling with a dash
        # shares its destination, so both work.
        add(
            "--bootstrap-servers",
            dest="bootstrap_servers",
            default="localhost:9092",
            help="Kafka bootstrap servers, host:port[,host:port]",
        )
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
            type=float,
            default=10.0,
            help="Seconds without records after which a partition stops holding the watermark back",
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
            type=float,
            default=5.0,
            help="Seconds of event-time disorder tolerated before a record counts as late",
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
            default="tocsin.deadletter.v1",
        )
        add(
            "--metrics-port",
            "--metrics_port",
            dest="metrics_port",
            type=int,
            default=None,
            help="Serve Prometheus /metrics on this port",
        )
        # Kafka security, passed through to the clients for real clusters.
        add(
            "--kafka-security-protocol",
            dest="kafka_security_protocol",
            default=None,
            choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        )
        add("--kafka-sasl-mechanism", dest="kafka_sasl_mechanism", default=None)
        add("--kafka-sasl-username", dest="kafka_sasl_username", default=None)
        add("--kafka-sasl-password", dest="kafka_sasl_password", default=None)
        add("--kafka-ssl-cafile", dest="kafka_ssl_cafile", default=None)
        add("--kafka-ssl-certfile", dest="kafka_ssl_certfile", default=None)
        add("--kafka-ssl-keyfile", dest="kafka_ssl_keyfile", default=None)


def parse_job_args(parser, argv: list[str] | None):
    """(the job's own arguments, the rest for Beam). The Kafka options are pipeline options, parsed by
    Beam; --help shows them with the job's all the same."""
    if argv is not None and ("-h" in argv or "--help" in argv):
        KafkaOptions._add_argparse_args(parser.add_argument_group("Kafka (pipeline options)"))
        parser.epilog = "Any Beam pipeline option (--runner, --parallelism, ...) is passed to the runner."
    return parser.parse_known_args(argv)


def kafka_client_config(opts: KafkaOptions) -> dict:
    from tocsin.config import KafkaSettings

    settings = {"bootstrap_servers": opts.bootstrap_servers}
    for name in (
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
    ):
        value = getattr(opts, f"kafka_{name}")
        if value is not None:
            settings[name] = value
    return KafkaSettings(**settings).client_config()
