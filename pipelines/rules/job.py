"""`tocsin pipeline alerts`: indicator signals -> threshold rules -> alert events on tocsin.alerts.v1.

Reads tocsin.signals.v1 (event time: a signal's window end, its start for an early pane), evaluates the
rules on each (rule, place) series in Beam state, and writes every alert event (FIRING, UPDATED,
RESOLVED) keyed by alert id. At start it reads the alert topic for the last state of every (rule, place),
so that after a restart or a replay nothing already emitted is emitted again; offsets are committed once
the alerts are durable, rewound by the longest history a rule reads so that the series are rebuilt whole
on restart.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import apache_beam as beam

from tocsin.cli_errors import exit_with_errors
from tocsin.kafka.read import read_topic
from tocsin.kafka.topics import ALERTS, SIGNALS
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.io.commit import CommitWhenDurable, committed_floor
from tocsin.pipelines.io.dead_letters import EncodeDeadLetters, LateToDeadLetter
from tocsin.pipelines.io.encode import EncodeAvro
from tocsin.pipelines.io.kafka_sink import WriteToKafka
from tocsin.pipelines.io.kafka_source import DEAD_LETTER, LATE, PROGRESS, ReadFromKafka, SourceConfig
from tocsin.pipelines.options import (
    JobArgumentParser,
    KafkaOptions,
    duration_arg,
    job_options,
    parse_job_args,
    serve_job_metrics,
    when_kafka_answers,
)
from tocsin.pipelines.rules.config import RuleSet, load_rules
from tocsin.pipelines.rules.transforms import Alerts, SignalWithEventTime, latest_alerts
from tocsin.serde.avro import decode
from tocsin.serde.cloudevents import alert_headers
from tocsin.telemetry.logging import get_logger
from tocsin.validation import ConfigErrors

STAGE = "pipeline.alerts"


def history_window(ruleset: RuleSet) -> tuple[int, int]:
    """(seconds of history the rules read, gcd of their periods): what the commit must keep re-readable."""
    span = max(r.history_windows * r.size_ms for r in ruleset.rules) // 1000
    period = math.gcd(*(r.period_ms // 1000 for r in ruleset.rules))
    return span - span % period, period


def restored_alerts(client: dict, topic: str) -> dict[str, dict]:
    return latest_alerts(decode(record.value) for record in read_topic(client, topic))


def group_id_for(opts: KafkaOptions, known) -> str:
    return opts.group_id or f"tocsin.alerts.{known.alerts_topic}"


def build_streaming(
    pipeline, opts: KafkaOptions, client: dict, ruleset: RuleSet, known, restored, floor: int | None = None
):
    """`restored`: the last alert per track key on the alert topic; `floor`: the emit_after of the
    group's last commit (windows decided before the restart: see lifecycle.restore)."""
    lateness_s = known.allowed_lateness
    config = SourceConfig(
        decode=SignalWithEventTime(),
        client=client,
        topics=(known.signals_topic,),
        group_id=group_id_for(opts, known),
        start=opts.start,
        idle_timeout=opts.idle_timeout,
        close_when_idle=opts.close_when_idle,
        max_out_of_orderness=opts.max_out_of_orderness,
        allowed_lateness=lateness_s,
        shards=opts.source_shards,
    )
    read = pipeline | "Read" >> ReadFromKafka(config)
    written = (
        read.records
        | "Signal" >> beam.Map(lambda r: r.value)
        | "Alerts" >> Alerts(ruleset, restored, floor)
        | "EncodeAlerts" >> EncodeAvro("Alert", topic=known.alerts_topic, cloudevent=alert_headers)
        | "WriteAlerts" >> WriteToKafka(client, known.alerts_topic)
    )
    _ = (
        (read[LATE] | "TooLate" >> LateToDeadLetter(STAGE, lateness_s, "too-late"), read[DEAD_LETTER])
        | "DeadLetters" >> beam.Flatten()
        | "EncodeDeadLetters" >> EncodeDeadLetters(opts.dead_letter_topic)
        | "WriteDeadLetters" >> WriteToKafka(client, opts.dead_letter_topic)
    )
    span_s, period_s = history_window(ruleset)
    _ = (read[PROGRESS], written) | "CommitOffsets" >> CommitWhenDurable(
        client, config.group_id, span_s, period_s, lateness_s
    )


def parser() -> argparse.ArgumentParser:
    p = JobArgumentParser(prog="tocsin pipeline alerts", description=__doc__.split("\n")[0])
    p.add_argument("--rules", type=Path, default=None, help="Rules YAML (default: packaged)")
    p.add_argument(
        "--catalogue", type=Path, default=None, help="Indicator catalogue YAML (default: packaged)"
    )
    p.add_argument("--external-lexicons", type=Path, default=None, help="Directory of external lexicons")
    p.add_argument("--enable", action="append", default=[], help="Enable an indicator disabled in the file")
    p.add_argument("--signals-topic", default=SIGNALS, help=f"Signals to evaluate (default {SIGNALS})")
    p.add_argument("--alerts-topic", default=ALERTS, help=f"Alert events (default {ALERTS})")
    p.add_argument(
        "--allowed-lateness",
        type=duration_arg,
        default="9d",
        help="How late a signal may arrive behind the watermark: an early pane is stamped with its window "
        "start, so the largest window plus the indicator job's lateness (default 9d = 7d + 2d)",
    )
    return p


def load(known) -> RuleSet:
    catalogue = load_catalogue(known.catalogue, external_dir=known.external_lexicons, enable=known.enable)
    return load_rules(known.rules, catalogue)


def run(argv: list[str] | None = None) -> None:
    p = parser()
    known, beam_args = parse_job_args(p, argv)
    try:
        ruleset = load(known)
    except ConfigErrors as error:  # every error of the file, as `tocsin rules check` lists them
        file = known.rules if error.kind == "rules" else known.catalogue
        exit_with_errors(file or Path(f"packaged {error.kind}"), error.errors)
    except OSError as error:  # a --catalogue that is not there (the rules loader reports its own file)
        p.error(f"{error.filename}: {error.strerror}")
    log = get_logger(stage="alerts")
    options, opts, client = job_options(p, beam_args)
    port = serve_job_metrics(p, opts)
    restored = when_kafka_answers(
        client, opts.broker_wait, lambda: restored_alerts(client, known.alerts_topic), "the last alert states"
    )
    floor = committed_floor(opts, client, group_id_for(opts, known), [known.signals_topic])
    log.info(
        "starting",
        rules=[r.id for r in ruleset.rules],
        signals_topic=known.signals_topic,
        alerts_topic=known.alerts_topic,
        restored_alerts=len(restored),
        resume_floor_ms=floor,
        metrics_port=port,
        runner=options.get_all_options()["runner"],
    )
    with beam.Pipeline(options=options) as pipeline:
        build_streaming(pipeline, opts, client, ruleset, known, restored, floor)


if __name__ == "__main__":
    run()
