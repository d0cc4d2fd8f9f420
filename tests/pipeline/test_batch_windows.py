"""Batch replays assemble each window from its slices (BatchWindowSignals): the same signals, once
each, as Beam's sliding windows over the same partials."""

from __future__ import annotations

import json

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue

from tests.unit.test_signal_slices import observations
from tocsin.pipelines.indicators import load_catalogue
from tocsin.pipelines.indicators.slices import SignalSlices
from tocsin.pipelines.indicators.transforms import BatchWindowSignals, WindowSignals, sliding_windows
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.runners import batch_options

pytestmark = pytest.mark.runner
CATALOGUE = load_catalogue()
WINDOWS = [WindowSpec.parse("1d/1h"), WindowSpec.parse("7d/1d")]


def test_sliding_windows_cover_every_window_holding_a_slice_and_never_change_one():
    a, b = (
        {"e1": (1.0, 0, frozenset({"x"}), ("o", "s", None, None, "x", 0), 1)},
        {"e2": (0.5, 2, frozenset({"y"}), ("o2", "s2", None, None, "y", 1), 1)},
    )
    out = [(s, e, sorted(acc)) for s, e, acc in sliding_windows({0: a, 2: b}, 3, 1)]
    assert out == [(-2, 1, ["e1"]), (-1, 2, ["e1"]), (0, 3, ["e1", "e2"]), (1, 4, ["e2"]), (2, 5, ["e2"])]
    assert list(a) == ["e1"] and list(b) == ["e2"]


def test_a_window_holding_the_slices_of_the_one_before_shares_its_accumulator():
    a, b = ({"e1": (1.0, 0, frozenset({"x"}), ("o", "s", None, None, "x", 0), 1)},) * 2
    windows = list(sliding_windows({0: a, 10: b}, 4, 1))
    assert [s for s, _, _ in windows] == [-3, -2, -1, 0, 7, 8, 9, 10]
    accs = [acc for _, _, acc in windows]
    # -3..0 hold slice 0 alone: one accumulator; 7 starts anew (not contiguous), then 8..10 share it
    assert all(acc is accs[0] for acc in accs[:4]) and all(acc is accs[4] for acc in accs[4:])
    assert accs[0] is not accs[4] and accs[0] == accs[4] == a and accs[0] is not a
    pairs = [acc for _, _, acc in sliding_windows({0: a, 2: b}, 3, 1)]  # {0}, {0}, {0, 2}, {2}, {2}
    assert pairs[0] is pairs[1] and pairs[3] is pairs[4]
    assert len({id(acc) for acc in pairs}) == 3


def stable(signal: dict) -> str:
    signal = dict(signal)
    signal.pop("emitted_at")
    return json.dumps(signal, sort_keys=True)


def test_batch_windows_equal_beams_sliding_windows_of_the_same_partials():
    folds = []
    for chunk in (observations(400)[:200], observations(400)[200:]):
        fold = SignalSlices(CATALOGUE, WINDOWS)
        for o in chunk:
            fold.add(None, o)
        folds += [TimestampedValue(element, ts / 1000) for element, ts in fold.drain()]
    with beam.Pipeline(options=batch_options([])) as p:
        partials = p | beam.Create(folds, reshuffle=False)
        beam_windows = (
            partials | "Beam" >> WindowSignals(CATALOGUE, WINDOWS, final_only=True) | "S1" >> beam.Map(stable)
        )
        sliced = partials | "Sliced" >> BatchWindowSignals(CATALOGUE, WINDOWS) | "S2" >> beam.Map(stable)
        both = (
            (
                beam_windows | "K1" >> beam.Map(lambda s: (s, "beam")),
                sliced | "K2" >> beam.Map(lambda s: (s, "sliced")),
            )
            | beam.Flatten()
            | beam.GroupByKey()
            | beam.MapTuple(lambda s, where: (json.loads(s)["id"], sorted(where)))
            | beam.Filter(lambda kv: kv[1] != ["beam", "sliced"])  # lacking, differing or repeated
        )
        assert_that(both, equal_to([]))

        def many(counts):
            assert counts[0] > 100, counts

        assert_that(sliced | beam.combiners.Count.Globally(), many, label="many")
