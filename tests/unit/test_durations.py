"""One duration grammar for every setting (Prometheus/Alertmanager's), typed at load."""

import pytest
from pydantic import Field

from tocsin.durations import Duration, DurationOrZero, format_duration, parse_duration, parse_duration_or_zero
from tocsin.validation import StrictModel, validate_collecting


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("5m", 300),
        ("1h30m", 5400),
        ("7d", 604_800),
        ("2w", 1_209_600),
        ("1d12h", 129_600),
        (" 10s ", 10),
        ("1w2d3h4m5s", 788_645),
    ],
)
def test_operators_write_durations_in_several_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("soon", "duration 'soon' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
        ("30m1h", "duration '30m1h' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
        ("1.5h", "duration '1.5h' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
        ("10", "duration '10' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)"),
        (10, "duration 10 has no unit: write 10s, 10m..."),
        ("0s", "duration '0s' must be greater than zero"),
        ("0", "duration '0' must be greater than zero"),
    ],
)
def test_a_bad_duration_says_why_in_one_line(text, message):
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_zero_is_allowed_where_it_means_none():
    assert parse_duration_or_zero("0") == parse_duration_or_zero("0s") == parse_duration_or_zero(0) == 0


@pytest.mark.parametrize("seconds", [1, 59, 90, 3600, 5400, 86_400, 604_800, 788_645])
def test_written_back_as_it_parses(seconds):
    assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(5400) == "1h30m" and format_duration(604_800) == "7d"


class _Settings(StrictModel):
    wait: DurationOrZero = 30
    timeout: Duration = 10
    name: str = Field(pattern="^[a-z]+$")


def test_a_model_holds_seconds_validated_at_load_and_writes_them_as_text():
    settings = _Settings.model_validate({"wait": "0s", "timeout": "1h30m", "name": "x"})
    assert (settings.wait, settings.timeout) == (0, 5400)
    assert settings.model_dump() == {"wait": "0s", "timeout": "1h30m", "name": "x"}
    assert _Settings(name="x").timeout == 10


def test_every_error_of_a_document_is_listed_and_the_valid_rest_kept():
    doc, errors = validate_collecting(_Settings, {"wait": "soon", "timeout": "0s", "name": "x", "colour": 1})
    assert errors == [
        "wait: duration 'soon' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)",
        "timeout: duration '0s' must be greater than zero",
        "colour: Extra inputs are not permitted",
    ]
    assert doc == _Settings(name="x")  # the bad optional fields fell back to their defaults


def test_a_bad_required_field_leaves_no_document_but_is_listed_once():
    doc, errors = validate_collecting(_Settings, {"timeout": "x", "name": "X"})
    assert doc is None
    assert errors == [
        "timeout: duration 'x' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)",
        "name: String should match pattern '^[a-z]+$'",
    ]
