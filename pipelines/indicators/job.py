"""`tocsin pipeline indicators`: raw incidents and news -> observations -> windowed indicator signals.

Streaming (the default): read the raw topics with ReadFromKafka, normalising each record as it is decoded
(records that cannot be normalised, and records later than the allowed lateness, go to the dead-letter
topic with the reason), write every observation to tocsin.observations.v1 and every signal pane to
tocsin.signals.v1 (keyed by signal id: a later pane replaces an earlier one), and commit offsets only once
the windows they feed are durable.

Batch (`--batch`, for replays and back-tests): the same transforms over files (`--from-file`: UCDP GED or
ReliefWeb listing CSV, GDELT export files or directories of them, ReliefWeb API JSON, RSS/Atom; see
tocsin/formats/files.py) or over the raw topics as they are now; signals go to the signals topic or, with
`--output-file`, to a JSON-lines file.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from pathlib import Path

import apache_beam as beam
import orjson

from tocsin.cli_errors import exit_with_errors
from tocsin.formats.records import BadFile
from tocsin.formats.reliefweb_csv import country_code
from tocsin.kafka.read import read_topic
from tocsin.kafka.topics import INCIDENTS, NEWS, OBSERVATIONS, SIGNALS
from tocsin.pipelines.indicators.catalogue import Catalogue, load_catalogue
from tocsin.pipelines.indicators.normalise import RawToObservation, as_observation
from tocsin.pipelines.indicators.readfold import (
    ReadPartials,
    fold_items,
    fold_units,
    processes_default,
    units_of,
)
from tocsin.pipelines.indicators.slices import SignalSlicesFactory, slices_for
from tocsin.pipelines.indicators.transforms import (
    BatchWindowSignals,
    IndicatorSignals,
    WindowSignals,
    WindowSpec,
)
from tocsin.pipelines.io.commit import CommitWhenDurable, committed_floor
from tocsin.pipelines.io.dead_letters import EncodeDeadLetters, LateToDeadLetter
from tocsin.pipelines.io.encode import EncodeAvro
from tocsin.pipelines.io.kafka_sink import WriteToKafka
from tocsin.pipelines.io.kafka_source import (
    DEAD_LETTER,
    LATE,
    PROGRESS,
    ReadFromKafka,
    SourceConfig,
    decode_failure,
)
from tocsin.pipelines.options import (
    JobArgumentParser,
    KafkaOptions,
    duration_arg,
    job_options,
    parse_job_args,
    serve_job_metrics,
    when_kafka_answers,
)
from tocsin.telemetry.logging import get_logger
from tocsin.validation import ConfigErrors

STAGE = "pipeline.indicators"
DEFAULT_WINDOWS = ("1d/1h", "7d/1d")
DEFAULT_INPUTS = (INCIDENTS, NEWS)


class Settings:
    """What the job needs besides the Kafka options; plain values, so tests can build it directly."""

    def __init__(
        self,
        catalogue: Catalogue,
        windows: list[WindowSpec],
        allowed_lateness_s: float = 0.0,
        early_count: int | None = None,
        early_seconds: float | None = None,
        by_region: bool = True,
        input_topics: tuple[str, ...] = DEFAULT_INPUTS,
        observations_topic: str | None = None,
        signals_topic: str = SIGNALS,
        indicators_by_window: dict[str, frozenset[str]] | None = None,
    ):
        self.catalogue = catalogue
        self.windows = windows
        self.allowed_lateness_s = allowed_lateness_s
        self.early_count = early_count
        self.early_seconds = early_seconds
        self.by_region = by_region
        self.input_topics = input_topics
        self.observations_topic = observations_topic
        self.signals_topic = signals_topic
        self.indicators_by_window = indicators_by_window

    def _window_args(self, emit_after_ms: int | None) -> dict:
        return dict(
            allowed_lateness_s=self.allowed_lateness_s,
            early_count=self.early_count,
            early_seconds=self.early_seconds,
            emit_after_ms=emit_after_ms,
        )

    def signals(self, emit_after_ms: int | None = None) -> IndicatorSignals:
        """Observations -> signals (folded per bundle)."""
        return IndicatorSignals(
            self.catalogue,
            self.windows,
            by_region=self.by_region,
            indicators_by_window=self.indicators_by_window,
            **self._window_args(emit_after_ms),
        )

    def slices(self) -> SignalSlicesFactory:
        """The fold of observations into partials before the windows (slices.py)."""
        return slices_for(
            self.catalogue, self.windows, self.by_region, self.indicators_by_window, self.early_count
        )

    def windowed(self, emit_after_ms: int | None = None, final_only: bool = False):
        """Partials (from `slices()`) -> signals; `final_only` for batch: each window's final pane, once,
        assembled from its slices (BatchWindowSignals)."""
        if final_only:
            return BatchWindowSignals(self.catalogue, self.windows)
        return WindowSignals(self.catalogue, self.windows, **self._window_args(emit_after_ms))


def group_id_for(settings: Settings) -> str:
    return f"tocsin.indicators.{settings.signals_topic}"


def build_streaming(pipeline, opts: KafkaOptions, client: dict, settings: Settings, emit_after_ms=None):
    # Observations are folded into partials in the source's read calls (slices.py), unless each one
    # is also published; a trigger that counts hits gets one partial per hit (slices_for).
    fold_in_source = not settings.observations_topic
    config = SourceConfig(
        decode=RawToObservation(),
        client=client,
        topics=tuple(settings.input_topics),
        group_id=opts.group_id or group_id_for(settings),
        start=opts.start,
        idle_timeout=opts.idle_timeout,
        close_when_idle=opts.close_when_idle,
        max_out_of_orderness=opts.max_out_of_orderness,
        allowed_lateness=settings.allowed_lateness_s,
        shards=opts.source_shards,
        combine=settings.slices() if fold_in_source else None,
    )
    read = pipeline | "Read" >> ReadFromKafka(config)
    if fold_in_source:
        signals = read.records | "Signals" >> settings.windowed(emit_after_ms)
    else:
        observations = read.records | "Observation" >> beam.Map(lambda r: r.value)
        _ = (
            observations
            # One per input record: not validated again (the normaliser's output is, in its tests).
            | "EncodeObservations"
            >> EncodeAvro("Observation", as_observation, check=False, topic=settings.observations_topic)
            | "WriteObservations" >> WriteToKafka(client, settings.observations_topic)
        )
        signals = observations | "Signals" >> settings.signals(emit_after_ms)
    written = (
        signals
        | "EncodeSignals"
        >> EncodeAvro(
            "IndicatorSignal", check=False, topic=settings.signals_topic
        )  # built by _FormatSignal, tested
        | "WriteSignals" >> WriteToKafka(client, settings.signals_topic)
    )
    _ = (
        (
            read[LATE] | "TooLate" >> LateToDeadLetter(STAGE, settings.allowed_lateness_s, "too-late"),
            read[DEAD_LETTER],
        )
        | "DeadLetters" >> beam.Flatten()
        | "EncodeDeadLetters" >> EncodeDeadLetters(opts.dead_letter_topic)
        | "WriteDeadLetters" >> WriteToKafka(client, opts.dead_letter_topic)
    )
    _ = (read[PROGRESS], written) | "CommitOffsets" >> CommitWhenDurable.for_windows(
        client, config.group_id, settings.windows, settings.allowed_lateness_s
    )


# ---------------------------------------------------------------------------------------------- batch


def dead_letter_json(letter: dict) -> dict:
    """A dead letter as a JSON-able dict, for the dead-letter files of batch replays."""
    return {**letter, "at": letter["at"].isoformat(), "key": None, "payload": repr(letter["payload"])}


def observations_from_topics(client: dict, topics) -> Iterator[tuple[dict | None, dict | None]]:
    """(observation, None) or (None, dead letter) for every record of the topics, normalised as the
    streaming source does it."""
    decode = RawToObservation()
    for topic in topics:
        for record in read_topic(client, topic):
            try:
                yield decode(record.value)[0], None
            except Exception as exc:  # the same dead letters as the streaming source
                yield None, decode_failure(record, exc)


def build_batch(
    pipeline, partials: list[str], settings: Settings, write_signals, write_letters, letters: list
):
    """Each window's final pane once, from the partials the reader folded (readfold.py)."""
    signals = (
        pipeline
        | "Partials" >> beam.Create(partials, reshuffle=False)
        | "ReadPartials" >> beam.ParDo(ReadPartials())
        | "Signals" >> settings.windowed(final_only=True)
    )
    write_signals(signals)
    if letters:
        write_letters(pipeline | "DeadLetters" >> beam.Create(letters, reshuffle=False))


class _WriteJsonLines(beam.DoFn):
    """Batch output for dry runs: one JSON signal a line, in one file (the pipeline runs in one process)."""

    def __init__(self, path: str):
        self.path = path
        self._lines: list[bytes] = []

    def start_bundle(self):
        self._lines = []

    def process(self, signal):
        # orjson: encoding the signals was a quarter of a batch replay with the standard library's.
        # Keys in the order the signal was built (the same for every signal), not sorted: sorting every
        # nested dict of a million signals was a fifth of a replay's pipeline.
        self._lines.append(orjson.dumps(signal, option=orjson.OPT_APPEND_NEWLINE))
        if len(self._lines) >= FLUSH_LINES:  # a batch bundle may hold every signal of the replay
            self._flush()

    def finish_bundle(self):
        self._flush()

    def _flush(self):
        # One append per flush (not an open per signal), as one write: bundles may run in threads.
        with open(self.path, "ab") as out:
            out.write(b"".join(self._lines))
        self._lines = []


FLUSH_LINES = 5_000


# ---------------------------------------------------------------------------------------------- run


def parser() -> argparse.ArgumentParser:
    p = JobArgumentParser(prog="tocsin pipeline indicators", description=__doc__.split("\n")[0])
    p.add_argument(
        "--catalogue", type=Path, default=None, help="Indicator catalogue YAML (default: packaged)"
    )
    p.add_argument("--external-lexicons", type=Path, default=None, help="Directory of external lexicons")
    p.add_argument("--enable", action="append", default=[], help="Enable an indicator disabled in the file")
    p.add_argument(
        "--window",
        action="append",
        dest="windows",
        default=None,
        help="SIZE/PERIOD sliding window, repeatable (default: 1d/1h and 7d/1d)",
    )
    p.add_argument(
        "--allowed-lateness",
        type=duration_arg,
        default="2d",
        help="How late data may update a window (default 2d)",
    )
    p.add_argument("--early-every", type=int, default=None, help="Early pane after this many hits")
    p.add_argument(
        "--early-after",
        type=duration_arg,
        default="60s",
        help="Early pane this long after the first hit; 0 for none",
    )
    p.add_argument("--no-regions", action="store_true", help="Country signals only")
    p.add_argument(
        "--input-topic",
        action="append",
        dest="input_topics",
        default=None,
        help=f"Raw topic to read, repeatable (default: {' and '.join(DEFAULT_INPUTS)})",
    )
    p.add_argument(
        "--observations-topic",
        default="",
        help=f"Also publish every observation here (e.g. {OBSERVATIONS}); off by default: it "
        "doubles the records written and halves the throughput",
    )
    p.add_argument("--signals-topic", default=SIGNALS, help=f"Signals topic (default {SIGNALS})")
    p.add_argument("--batch", action="store_true", help="Batch replay of --from-file or the input topics")
    p.add_argument(
        "--from-file",
        action="append",
        type=Path,
        default=[],
        help="Batch: UCDP or ReliefWeb listing CSV, GDELT export file or dir, ReliefWeb JSON, RSS/Atom",
    )
    p.add_argument(
        "--country", default=None, help="Batch: ISO alpha-3 country of ReliefWeb listing rows naming none"
    )
    p.add_argument("--output-file", type=Path, default=None, help="Batch: write signals as JSON lines here")
    p.add_argument(
        "--processes",
        type=int,
        default=processes_default(),
        help="Batch: processes that read, normalise and fold the files (default: one per core)",
    )
    return p


def settings_from(known) -> Settings:
    return Settings(
        catalogue=load_catalogue(known.catalogue, external_dir=known.external_lexicons, enable=known.enable),
        windows=[WindowSpec.parse(w) for w in (known.windows or DEFAULT_WINDOWS)],
        allowed_lateness_s=known.allowed_lateness,
        early_count=known.early_every,
        early_seconds=known.early_after or None,
        by_region=not known.no_regions,
        input_topics=tuple(known.input_topics or DEFAULT_INPUTS),
        observations_topic=known.observations_topic or None,
        signals_topic=known.signals_topic,
    )


def run(argv: list[str] | None = None) -> None:
    p = parser()
    known, beam_args = parse_job_args(p, argv)
    try:
        settings = settings_from(known)
        country = country_code(known.country) if known.country else None
    except ConfigErrors as error:  # every error of the catalogue, as `tocsin rules check` lists them
        exit_with_errors(known.catalogue or Path(f"packaged {error.kind}"), error.errors)
    except ValueError as error:
        p.error(str(error))
    except OSError as error:  # a --catalogue that is not there
        p.error(f"{error.filename}: {error.strerror}")
    log = get_logger(stage="indicators")
    options, opts, client = job_options(p, beam_args, streaming=not known.batch)
    port = serve_job_metrics(p, opts)
    common = dict(
        windows=[w.label() for w in settings.windows],
        allowed_lateness_s=settings.allowed_lateness_s,
        indicators=len(settings.catalogue.enabled()),
        metrics_port=port,
        runner=options.get_all_options()["runner"],
    )
    if not known.batch:
        group_id = opts.group_id or group_id_for(settings)
        emit_after = committed_floor(opts, client, group_id, settings.input_topics)
        log.info(
            "starting", mode="streaming", inputs=settings.input_topics, resume_floor_ms=emit_after, **common
        )
        with beam.Pipeline(options=options) as pipeline:
            build_streaming(pipeline, opts, client, settings, emit_after)
        return
    work = tempfile.TemporaryDirectory(prefix="tocsin-batch-")
    workdir = Path(work.name)
    if known.from_file:
        try:
            units = units_of([(path, country) for path in known.from_file], known.processes)
            partials, letters, stats = fold_units(
                units, settings.slices(), workdir, stage=STAGE, processes=known.processes
            )
        except BadFile as error:  # one line naming the file, as `tocsin connect` reports it
            p.exit(1, f"error: {error}\n")
    else:
        partials, letters, stats = when_kafka_answers(
            client,
            opts.broker_wait,
            lambda: fold_items(
                observations_from_topics(client, settings.input_topics), settings.slices(), workdir
            ),
            "the input topics",
        )
    letters = [dead_letter_json(letter) for letter in letters] if known.output_file is not None else letters
    log.info("starting", mode="batch", observations=stats.observations, dead_letters=len(letters), **common)
    if known.output_file is not None:
        known.output_file.parent.mkdir(parents=True, exist_ok=True)
        known.output_file.write_text("")
        path = str(known.output_file)

        def write_signals(signals):
            return signals | "WriteFile" >> beam.ParDo(_WriteJsonLines(path))
    else:

        def write_signals(signals):
            return (
                signals
                | "EncodeSignals" >> EncodeAvro("IndicatorSignal", topic=settings.signals_topic)
                | "WriteSignals" >> WriteToKafka(client, settings.signals_topic)
            )

    def write_letters(letters_pc):
        if known.output_file is not None:
            letters_path = str(known.output_file.with_suffix(".deadletters.jsonl"))
            Path(letters_path).write_text("")
            return letters_pc | "WriteLetters" >> beam.ParDo(_WriteJsonLines(letters_path))
        return (
            letters_pc
            | "EncodeDeadLetters" >> EncodeDeadLetters(opts.dead_letter_topic)
            | "WriteDeadLetters" >> WriteToKafka(client, opts.dead_letter_topic)
        )

    with work, beam.Pipeline(options=options) as pipeline:
        build_batch(pipeline, partials, settings, write_signals, write_letters, letters)
    log.info("done", mode="batch")


if __name__ == "__main__":
    run()
