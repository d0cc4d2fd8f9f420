"""Batch replays' reader: input files -> folded partials, on every core.

A replay spends most of its time per record, in Python: parsing, normalising, classifying and folding
each one (about 100 µs a record). Prism runs one Python SDK worker, so inside the pipeline that work
would use one core. Here it is the pipeline's source, run before the windows: the inputs are cut into
units (groups of GDELT export files, or one part of a large CSV's rows, dealt k, k+n, ...), and a pool
of processes reads each unit, normalises its records and folds the observations into partials with the
streaming job's own combiner (slices.py). Each unit's partials go to a pickle file, and the Beam
pipeline reads those (`ReadPartials`) and assembles the windows from them. The runner therefore sees a few
partials per place and slice, not one element per record, and no record is written or read twice (the
replays used to write every observation to JSON-lines shards and parse them again).

The outcome does not depend on how the inputs were cut: partials merge exactly (aggregate.py), and
every window is a union of whole slices. Dead letters come back in input order, with the reason, and
counters are tallied in the workers and counted by the pipeline as it reads each unit (so they are
Beam metrics too, not lost with a worker process).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import apache_beam as beam

from tocsin.formats.files import detect, files_of, read_records
from tocsin.formats.records import BadFile, Reject
from tocsin.pipelines.indicators.normalise import NormaliseError, normalise
from tocsin.pipelines.indicators.slices import SignalSlicesFactory, count_tally
from tocsin.pipelines.io.kafka_source import drained
from tocsin.serde.dead_letter import dead_letter

UNIT_BYTES = 16 << 20  # GDELT export files per unit: ~40,000 events, a few seconds of work
SPLITTABLE = ("ucdp-ged-csv", "reliefweb-listing-csv")  # formats whose rows a unit can take a part of


class Unit(NamedTuple):
    """What one worker reads: files in order, with the country of rows that name none; of a single
    large file, only the rows k, k + n, k + 2n, ... (part k of n)."""

    files: tuple[str, ...]
    country: str | None = None
    part: int = 0
    parts: int = 1


def processes_default() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def units_of(
    inputs: list[tuple[Path, str | None]], processes: int, unit_bytes: int = UNIT_BYTES
) -> list[Unit]:
    """The units of (path, country) inputs, in input order. Every file's format is found first (BadFile
    if one has none), as `read_records` does. Units are small enough that every process gets several
    (so one slow unit does not leave the others idle), and a large CSV file is dealt among `processes`."""
    found = [(path, country, files_of(path)) for path, country in inputs]
    for _, _, files in found:
        for file in files:
            detect(file)
    total = sum(f.stat().st_size for _, _, files in found for f in files)
    size = max(min(unit_bytes, total // (4 * processes) or 1), 1)
    units: list[Unit] = []
    for _, country, files in found:
        if len(files) == 1:
            n = processes if detect(files[0]).name in SPLITTABLE and files[0].stat().st_size > size else 1
            units += [Unit((str(files[0]),), country, k, n) for k in range(n)]
            continue
        group: list[str] = []
        taken = 0
        for file in files:
            group.append(str(file))
            taken += file.stat().st_size
            if taken >= size:
                units.append(Unit(tuple(group), country))
                group, taken = [], 0
        if group:
            units.append(Unit(tuple(group), country))
    return units


@dataclass
class ReadStats:
    """What a replay reports of its input."""

    events: int = 0  # records read (valid or not)
    observations: int = 0
    outside_period: int = 0
    dead_letters: int = 0
    countries: set[str] = field(default_factory=set)
    first_ms: int | None = None
    last_ms: int | None = None

    def seen(self, observation: dict) -> None:
        t = observation["event_time"]
        self.first_ms = t if self.first_ms is None else min(self.first_ms, t)
        self.last_ms = t if self.last_ms is None else max(self.last_ms, t)
        if observation.get("country"):
            self.countries.add(observation["country"])

    def merge(self, other: ReadStats) -> None:
        self.events += other.events
        self.observations += other.observations
        self.outside_period += other.outside_period
        self.dead_letters += other.dead_letters
        self.countries |= other.countries
        for t in (other.first_ms, other.last_ms):
            if t is not None:
                self.first_ms = t if self.first_ms is None else min(self.first_ms, t)
                self.last_ms = t if self.last_ms is None else max(self.last_ms, t)


def normalised(unit: Unit, stage: str) -> Iterator[tuple[dict | None, dict | None]]:
    """(observation, None) or (None, dead letter) for every record of the unit (see read_records)."""
    for path in unit.files:
        for source, _, schema, item in read_records(Path(path), unit.country, (unit.part, unit.parts)):
            if isinstance(item, Reject):
                letter = dead_letter(
                    stage=stage, reason=item.reason, errors=item.errors, payload=item.raw, source=source
                )
                yield None, letter
                continue
            try:
                yield normalise(schema, item), None
            except NormaliseError as error:
                letter = dead_letter(
                    stage=stage, reason=error.reason, errors=error.errors, payload=repr(item), source=source
                )
                yield None, letter


class Period(NamedTuple):
    """Event times [start_ms, end_ms) a replay keeps (None: unbounded)."""

    start_ms: int | None = None
    end_ms: int | None = None

    def holds(self, t: int) -> bool:
        return (self.start_ms is None or t >= self.start_ms) and (self.end_ms is None or t < self.end_ms)


class Folded(NamedTuple):
    """A unit read: its partials' file, its dead letters (in order), what was read."""

    path: str
    letters: list[dict]
    stats: ReadStats
    error: str | None = None  # a BadFile's message: the replay stops on it


def fold_unit(
    index: int, unit: Unit, factory: SignalSlicesFactory, workdir: str, period: Period, stage: str
) -> Folded:
    """Read, normalise and fold one unit; its partials (and the counters' tally) pickled to a file."""
    combiner = factory()
    stats, letters = ReadStats(), []
    try:
        for observation, letter in normalised(unit, stage):
            stats.events += 1
            if letter is not None:
                letters.append(letter)
                continue
            if not period.holds(observation["event_time"]):
                stats.outside_period += 1
                continue
            stats.observations += 1
            stats.seen(observation)
            combiner.add(None, observation)
    except BadFile as error:  # by message: an exception crosses processes only if it pickles
        return Folded("", [], stats, str(error))
    stats.dead_letters = len(letters)
    path = os.path.join(workdir, f"partials-{index:05d}.pickle")
    _dump(path, combiner)
    return Folded(path, letters, stats)


def pool_context():
    """fork when this process has no other thread: the workers start at once, with every module
    loaded. Otherwise forkserver (a fork of a process with threads, e.g. gRPC's after a pipeline ran,
    may copy a lock one of them held), whose server imports this module once before forking workers:
    ~3 s more, measured."""
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


_FACTORY: SignalSlicesFactory | None = None


def _init(factory: SignalSlicesFactory) -> None:
    global _FACTORY
    _FACTORY = factory


def _fold_in_worker(args) -> Folded:
    return fold_unit(args[0], args[1], _FACTORY, *args[2:])


def in_order(submit: Callable, items: Iterable, inflight: int) -> Iterator:
    """Results of `submit(item)` (futures) in input order, with at most `inflight` pending: a pool with
    no bound on what is queued would read the whole input ahead of the consumer."""
    pending: deque = deque()
    for item in items:
        pending.append(submit(item))
        if len(pending) >= inflight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def fold_units(
    units: list[Unit],
    factory: SignalSlicesFactory,
    workdir: Path,
    *,
    period: Period = Period(),
    stage: str,
    processes: int = 1,
    advance: Callable[[Folded], None] = lambda folded: None,
) -> tuple[list[str], list[dict], ReadStats]:
    """Every unit folded (by `processes` worker processes, or here with 1): the partials' files, the
    dead letters and the stats, in input order; BadFile if a file could not be read."""
    jobs = [(i, unit, str(workdir), period, stage) for i, unit in enumerate(units)]
    paths, letters, stats = [], [], ReadStats()
    if processes <= 1 or len(units) <= 1:
        results: Iterator[Folded] = (fold_unit(i, u, factory, *rest) for i, u, *rest in jobs)
        return _collect(results, paths, letters, stats, advance)
    context = pool_context()
    with ProcessPoolExecutor(processes, mp_context=context, initializer=_init, initargs=(factory,)) as pool:
        results = in_order(lambda job: pool.submit(_fold_in_worker, job), jobs, 2 * processes)
        return _collect(results, paths, letters, stats, advance)


def fold_items(
    items: Iterable[tuple[dict | None, dict | None]],
    factory: SignalSlicesFactory,
    workdir: Path,
    *,
    period: Period = Period(),
    chunk: int = 50_000,
) -> tuple[list[str], list[dict], ReadStats]:
    """(observation, None) or (None, dead letter) items, as a reader other than files gives them (the
    topics of a batch replay), folded here, `chunk` observations a partials file."""
    paths, letters, stats = [], [], ReadStats()
    combiner = factory()

    def flush():
        path = os.path.join(workdir, f"partials-{len(paths):05d}.pickle")
        _dump(path, combiner)
        paths.append(path)

    held = 0
    for observation, letter in items:
        stats.events += 1
        if letter is not None:
            letters.append(letter)
            stats.dead_letters += 1
        elif not period.holds(observation["event_time"]):
            stats.outside_period += 1
        else:
            stats.observations += 1
            stats.seen(observation)
            combiner.add(None, observation)
            held += 1
            if held == chunk:
                flush()
                held = 0
    if held:
        flush()
    return paths, letters, stats


def _dump(path: str, combiner) -> None:
    with open(path, "wb") as out:
        pickle.dump((combiner.tally(), list(combiner.partials())), out, protocol=pickle.HIGHEST_PROTOCOL)


def _collect(results, paths, letters, stats, advance):
    for folded in results:
        if folded.error is not None:
            raise BadFile(folded.error)
        paths.append(folded.path)
        letters.extend(folded.letters)
        stats.merge(folded.stats)
        advance(folded)
    return paths, letters, stats


class ReadPartials(beam.DoFn):
    """A unit's partials file -> its partials at their slices' timestamps; the unit's counters counted
    here (in a bundle, so as Beam metrics too)."""

    def process(self, path: str):
        with open(path, "rb") as data:
            tally, partials = pickle.load(data)
        count_tally(tally)
        yield from drained(_Stored(partials))


class _Stored:
    def __init__(self, partials: list):
        self.items = partials

    def drain(self):
        return iter(self.items)
