"""Property-based fuzzing of tocsin's edges (hypothesis): whatever bytes come in, the intake answers a
report or a list of errors (never an exception a server would turn into a 500), and every record it
accepts is one every consumer decodes; whatever bytes reach a pipeline's decoder, it returns a record
or raises an ordinary error that becomes a dead letter with a reason (never a crash of the job).

The counts are set so that `make test` tries >= 5,000 intake bodies and >= 1,000 corrupt records per
input topic in well under a minute; `make test-faults` runs them (and the kill suite) with more.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_intake_model import GOOD as GOOD_EXAMPLE
from tocsin.connectors.intake.model import BadRequest, parse_report
from tocsin.connectors.intake.record import to_record
from tocsin.pipelines.indicators.normalise import NormaliseError, RawToObservation
from tocsin.pipelines.io.source_dead_letters import decode_failure
from tocsin.pipelines.io.source_records import KafkaRecord
from tocsin.pipelines.rules.transforms import SignalWithEventTime
from tocsin.serde.avro import decode, default_registry, encode

SCALE = int(os.environ.get("TOCSIN_FUZZ_SCALE", "1"))


def fuzz(examples: int):
    """Deterministic (derandomized) so a failure reproduces; no example database in the checkout."""
    return settings(
        max_examples=examples * SCALE,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )


SECRET = "s" * 32

# JSON values of every kind, nested, with hostile strings (surrogate escapes are added below).
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
# A valid report with one field replaced, removed or added: the bodies that get furthest in.
fields = st.sampled_from(sorted(GOOD_EXAMPLE) + ["extra"])


def _changed(field: str, value, drop: bool) -> dict:
    changed = GOOD_EXAMPLE | {field: value}
    return {k: v for k, v in changed.items() if not (drop and k == field)}


mutated = st.builds(_changed, fields, json_values, st.booleans())


def _intake_outcome(body: bytes) -> None:
    try:
        report = parse_report(body)
    except BadRequest as refused:
        assert refused.errors and all(isinstance(e, str) and e for e in refused.errors)
        return
    record = to_record(report, "fuzzers", SECRET)
    schema = default_registry().get("IncidentReport")
    assert decode(encode(schema, record))["id"] == record["id"]  # what it accepts, every consumer reads


@fuzz(3000)
@given(mutated)
def test_a_report_with_any_field_changed_is_accepted_readable_or_refused_with_reasons(body):
    _intake_outcome(json.dumps(body).encode())


@fuzz(1500)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_or_json_value_as_a_body_is_refused_with_reasons(body):
    _intake_outcome(body)


@fuzz(500)
@given(st.sampled_from(sorted(GOOD_EXAMPLE)), st.integers(0xD800, 0xDFFF), st.integers(1, 1200))
def test_surrogate_escapes_and_deep_nesting_in_any_field_are_refused(field, surrogate, depth):
    escaped = json.dumps(GOOD_EXAMPLE | {field: "x"}).replace('"x"', f'"\\u{surrogate:04x}"', 1)
    _intake_outcome(escaped.encode())
    nested = json.dumps(GOOD_EXAMPLE | {field: "x"}).replace('"x"', "[" * depth + "]" * depth, 1)
    _intake_outcome(nested.encode())


def _valid_messages() -> dict[str, bytes]:
    registry = default_registry()
    fixtures = Path(__file__).parents[1] / "fixtures" / "records"
    return {
        name: encode(registry.get(name), json.loads((fixtures / f"{name}.json").read_text()))
        for name in ("IncidentReport", "NewsItem", "IndicatorSignal")
    }


MESSAGES = _valid_messages()
DECODERS = {"IncidentReport": RawToObservation(), "NewsItem": RawToObservation(),
            "IndicatorSignal": SignalWithEventTime()}  # fmt: skip


def corrupted(message: bytes):
    """A valid message cut, extended, or with bytes overwritten: what a broken producer writes."""
    cut = st.integers(0, len(message)).map(lambda n: message[:n])
    extended = st.binary(min_size=1, max_size=20).map(lambda extra: message + extra)
    overwritten = st.tuples(st.integers(0, len(message) - 1), st.binary(min_size=1, max_size=8)).map(
        lambda at: message[: at[0]] + at[1] + message[at[0] + len(at[1]) :]
    )
    return cut | extended | overwritten | st.binary(max_size=80)


def _record_outcome(schema_name: str, value: bytes) -> None:
    try:
        DECODERS[schema_name](value)
    except (ValueError, NormaliseError) as error:  # SerdeError is a ValueError; the source catches these
        letter = decode_failure(KafkaRecord("t", 0, 7, b"k", value, 0), error)
        assert letter["reason"] in ("decode-error", "normalise-error") and letter["errors"]
        encode(default_registry().get("DeadLetter"), letter)  # the dead letter itself is writable


def _corrupt_record_test(schema_name: str):
    @fuzz(1000)
    @given(corrupted(MESSAGES[schema_name]))
    def test(value):
        _record_outcome(schema_name, value)

    test.__name__ = f"test_a_corrupt_{schema_name}_record_is_read_or_a_dead_letter_with_a_reason"
    return test


for _name in MESSAGES:
    globals()[f"test_a_corrupt_{_name}_record_is_read_or_a_dead_letter_with_a_reason"] = _corrupt_record_test(
        _name
    )
