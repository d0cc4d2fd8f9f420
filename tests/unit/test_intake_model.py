"""The HTTP intake's pure parts: exact validation messages, pseudonyms, coarsening, rate limit (its config
and tokens: test_intake_config.py)."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import pytest

from tocsin.connectors.intake import (
    KM_PER_DEGREE,
    BadRequest,
    RateLimiter,
    coarsen,
    parse_report,
    pseudonym,
    to_record,
)
from tocsin.serde.avro import decode, default_registry, encode

SECRET = "s" * 32
GOOD = {
    "title": "Shelling of the market",
    "description": "Several houses hit in the morning.",
    "event_time": "2024-05-01T07:30:00+03:00",
    "country": "sdn",
    "admin1": "North Darfur",
    "location_name": "El Fasher",
    "latitude": 13.6289,
    "longitude": 25.3494,
    "language": "en",
    "url": "https://example.org/reports/1",
    "event_codes": ["cameo:190"],
    "fatalities": {"best": 4, "low": 3, "high": 6, "civilians": 4},
    "reporter": "Amina Yusuf <amina@example.org>",
    "source_type": "FIELD_MONITOR",
}


def errors_of(body: dict | bytes) -> list[str]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadRequest) as caught:
        parse_report(raw)
    return caught.value.errors


def test_a_good_report_becomes_a_valid_incident_report():
    report = parse_report(json.dumps(GOOD).encode())
    rid = uuid.UUID("12345678-1234-4678-9234-567812345678")
    now = dt.datetime(2024, 5, 2, tzinfo=dt.UTC)
    record = to_record(report, "darfur-monitors", SECRET, record_uuid=rid, now=now)
    schema = default_registry().get("IncidentReport")
    back = decode(encode(schema, record), schema)
    assert back["id"] == f"intake:{rid}" and back["source_record_id"] == str(rid)
    assert back["source"] == "intake:darfur-monitors"
    assert back["attributes"] == {"organisation": "darfur-monitors"}
    assert back["country"] == "SDN"
    assert back["event_time"] == dt.datetime(2024, 5, 1, 4, 30, tzinfo=dt.UTC)
    assert back["ingested_at"] == now
    assert (back["latitude"], back["longitude"]) == (13.6289, 25.3494)  # no coarsen_km: kept
    assert back["fatalities"] == {"best": 4, "low": 3, "high": 6, "civilians": 4}
    assert back["reporter"] == pseudonym(SECRET, "darfur-monitors", GOOD["reporter"])
    assert "Amina" not in repr(report)


def test_every_error_is_listed_with_its_field_path():
    body = GOOD | {
        "title": "   ",
        "event_time": "2024-05-01T07:30:00",
        "country": "XYZ",
        "latitude": 91,
        "language": "english",
        "url": "ftp://example.org/x",
        "event_codes": ["cameo:190", "CAMEO 190"],
        "fatalities": {"best": -1, "deaths": 3},
        "reporter": "",
        "coarsen_km": 0,
        "source_type": "NEWS",
        "name": "someone",
    }
    assert errors_of(body) == [
        "title: String should have at least 1 character",
        "event_time: Input should have timezone info",
        "country: 'XYZ' is not an ISO 3166-1 alpha-3 country code",
        "latitude: Input should be less than or equal to 90",
        "language: 'english' is not an ISO 639-1 language code",
        "url: URL scheme should be 'http' or 'https'",
        "event_codes.1: String should match pattern '^[a-z0-9_.-]+:\\S+$'",
        "fatalities.best: Input should be greater than or equal to 0",
        "fatalities.deaths: Extra inputs are not permitted",
        "reporter: Input should not be blank",
        "coarsen_km: Input should be greater than 0",
        "source_type: Input should be 'FIELD_MONITOR' or 'CIVIL_SOCIETY'",
        "name: Extra inputs are not permitted",
    ]


def test_missing_fields_epoch_times_lone_coordinates_and_inconsistent_counts():
    assert errors_of({}) == [
        "title: Field required",
        "event_time: Field required",
        "country: Field required",
        "reporter: Field required",
        "source_type: Field required",
    ]
    body = {k: v for k, v in GOOD.items() if k != "longitude"} | {
        "event_time": 1714545000,
        "fatalities": {"best": 2, "civilians": 5},
    }
    assert errors_of(body) == [
        "event_time: Input should be an ISO 8601 date-time string with offset",
        "longitude: latitude and longitude should be given together",
        "fatalities: civilians should not exceed best",
    ]
    assert errors_of(GOOD | {"event_time": "2999-01-01T00:00:00Z"}) == [
        "event_time: Input should not be in the future"
    ]


def test_bodies_that_are_not_a_json_object_get_one_clear_error():
    assert errors_of(b'{"title": "a",') == [
        "body: invalid JSON: Expecting property name enclosed in double quotes at line 1 column 15"
    ]
    assert errors_of(b"") == ["body: invalid JSON: Expecting value at line 1 column 1"]
    assert errors_of(b'{"latitude": NaN}') == ["body: invalid JSON: NaN is not JSON"]
    assert errors_of(b"\xff\xfe{}") == ["body: invalid JSON: not UTF-8"]
    assert errors_of(b"[1, 2]") == ["body: should be a JSON object"]


def test_the_pseudonym_is_deterministic_keyed_and_scoped_to_the_organisation():
    first = pseudonym(SECRET, "org-a", "Amina Yusuf")
    assert first == pseudonym(SECRET, "org-a", "Amina Yusuf")
    assert first == pseudonym(SECRET, "org-a", "  Amina Yusuf\n")  # surrounding whitespace ignored
    assert len(first) == 64 and int(first, 16) >= 0
    assert "Amina" not in first
    assert pseudonym("t" * 32, "org-a", "Amina Yusuf") != first  # another secret, another pseudonym
    assert pseudonym(SECRET, "org-b", "Amina Yusuf") != first
    assert pseudonym(SECRET, "org-a", "Amina Yusuf.") != first
    # Precomposed and decomposed forms of the same name are the same person.
    assert pseudonym(SECRET, "org-a", "Jos\u00e9") == pseudonym(SECRET, "org-a", "Jose\u0301")


def test_coarsening_snaps_to_a_grid_of_the_requested_size():
    lat, lon = coarsen(13.6289, 25.3494, 10)
    step = 10 / KM_PER_DEGREE
    assert lat == pytest.approx(round(13.6289 / step) * step, abs=1e-6)
    assert abs(lat - 13.6289) * KM_PER_DEGREE <= 5.0001
    east_west_km = abs(lon - 25.3494) * KM_PER_DEGREE * math.cos(math.radians(lat))
    assert east_west_km <= 5.0001
    # Every point of the same cell gets the same coordinates.
    assert coarsen(13.6289 + 0.001, 25.3494 - 0.001, 10) == (lat, lon)
    assert coarsen(13.6289, 25.3494, 1) != (lat, lon)
    assert coarsen(90.0, 123.4, 10) == (90.0, 0.0)  # no east-west grid at the pole
    # A grid node past the antimeridian is given as its longitude in [-180, 180].
    assert coarsen(0.0, 179.99, 7 * KM_PER_DEGREE) == (0.0, -178.0)


def test_coarsen_km_applies_to_the_record_and_is_recorded():
    report = parse_report(json.dumps(GOOD | {"coarsen_km": 25}).encode())
    record = to_record(report, "org-a", SECRET)
    assert (record["latitude"], record["longitude"]) == coarsen(13.6289, 25.3494, 25)
    assert record["attributes"] == {"organisation": "org-a", "coarsen_km": "25"}


def test_the_token_bucket_allows_a_burst_then_the_rate():
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.acquire("t") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("t") == pytest.approx(0.5)
    assert limiter.acquire("other") == 0.0  # buckets are per token
    now[0] = 0.5
    assert limiter.acquire("t") == 0.0
    assert limiter.acquire("t") == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", ["body: invalid JSON: nested too deep"]),
        (
            b'{"title": "market \\ud800 shelled"}',
            ["body: a string holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"],
        ),
        (GOOD | {"event_time": "0001-01-01T00:00:00+14:00"}, ["event_time: Input should not be before 1900"]),
        (
            GOOD | {"latitude": True, "longitude": "25.3"},
            ["latitude: Input should be a valid number", "longitude: Input should be a valid number"],
        ),
        (GOOD | {"fatalities": {"best": True}}, ["fatalities.best: Input should be a valid integer"]),
    ],
    ids=["deep", "surrogate", "year-0", "bool-coordinate", "bool-count"],
)
def test_bodies_no_consumer_could_read_are_refused_with_the_reason(body, errors):
    # each was a 500 or a 202 for a report no consumer could decode (a fuzzed intake found them)
    assert errors_of(body) == errors
