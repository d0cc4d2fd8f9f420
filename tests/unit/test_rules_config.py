"""Rules YAML: every error listed with its path and an exact message; the packaged rules load."""

from __future__ import annotations

import pytest

from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import RulesError, load_rules, parse_rules

GOOD = {
    "id": "r1",
    "description": "d",
    "kind": "threshold",
    "indicator": "rf1.armed_conflict",
    "window": "1d/1h",
    "levels": {"watch": 5},
}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def errors(catalogue, *rules, version=1):
    with pytest.raises(RulesError) as caught:
        parse_rules({"version": version, "rules": list(rules)}, catalogue)
    return caught.value.errors


@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "rules.0.colour: Extra inputs are not permitted"),
        ({"indicator": "rf1.nope"}, "rules.0.indicator: indicator 'rf1.nope' is not in the catalogue"),
        (
            {"indicator": "rf8.hate_terms_external"},
            "rules.0.indicator: indicator 'rf8.hate_terms_external' is disabled in the catalogue "
            "(enable it or drop the rule)",
        ),
        (
            {"kind": "spike"},
            "rules.0.kind: Input should be 'threshold', 'rate_of_change', 'anomaly' or 'risk_score'",
        ),
        (
            {"window": "1x"},
            "rules.0.window: duration '1x' is not like 90s, 1h30m or 7d (whole w, d, h, m, s, largest first)",
        ),
        ({"window": "1d/7h"}, "rules.0.window: window '1d/7h': the size must be a multiple of the period"),
        ({"levels": {}}, "rules.0.levels: at least one of watch, warning, critical is needed"),
        (
            {"levels": {"watch": 5, "warning": 5}},
            "rules.0.levels: levels must increase from watch to warning to critical",
        ),
        (
            {"levels": {"severe": 5}},
            "rules.0.levels.severe: Input should be 'watch', 'warning' or 'critical'",
        ),
        ({"resolve_below": 6}, "rules.0: resolve_below (6) must not exceed the lowest level (5)"),
        ({"for": 0}, "rules.0.for: Input should be greater than or equal to 1"),
        ({"min_sources": 0}, "rules.0.min_sources: Input should be greater than or equal to 1"),
        (
            {"field": "deaths"},
            "rules.0.field: Input should be 'count', 'weighted_count', 'fatalities' or 'distinct_sources'",
        ),
        ({"per": "district"}, "rules.0.per: Input should be 'country' or 'region'"),
        ({"baseline": 10}, "rules.0: 'baseline' is only for kind anomaly"),
        (
            {"previous": 2, "method": "zscore"},
            "rules.0: 'previous' is only for kind rate_of_change; 'method' is only for kind anomaly",
        ),
        (
            {"kind": "anomaly", "baseline": 4, "min_history": 5},
            "rules.0: min_history (5) must not exceed baseline (4)",
        ),
        (
            {"kind": "risk_score"},
            "rules.0: 'indicator' is only for kind threshold or rate_of_change or anomaly; "
            "kind risk_score needs 'indicators' (indicator: {weight, saturation})",
        ),
        ({"id": "Bad Id"}, "rules.0.id: rule id 'Bad Id' must be lower case words joined by '-', '_' or '.'"),
        ({"description": ""}, "rules.0.description: String should have at least 1 character"),
        ({"share_of": "volume.nope"}, "rules.0.share_of: indicator 'volume.nope' is not in the catalogue"),
    ],
)
def test_each_config_error_has_an_exact_message(catalogue, change, message):
    assert errors(catalogue, GOOD | change) == [message]


def test_references_are_checked_even_when_the_rule_has_other_errors(catalogue):
    assert errors(catalogue, GOOD | {"indicator": "rf1.nope", "colour": "red"}) == [
        "rules.0.colour: Extra inputs are not permitted",
        "rules.0.indicator: indicator 'rf1.nope' is not in the catalogue",
    ]


def test_missing_fields_and_references_in_a_risk_score(catalogue):
    score = {
        "id": "s",
        "description": "d",
        "kind": "risk_score",
        "window": "7d/1d",
        "levels": {"watch": 1},
        "indicators": {
            "rf1.armed_conflict": {"weight": 0, "saturation": 1},
            "rf2.gone": {"weight": 1, "saturation": 1},
        },
    }
    assert errors(catalogue, score) == [
        "rules.0.indicators.rf1.armed_conflict.weight: Input should be greater than 0",
        "rules.0.indicators.rf2.gone: indicator 'rf2.gone' is not in the catalogue",
    ]
    assert errors(catalogue, {"id": "x", "kind": "threshold", "indicator": "rf1.armed_conflict"}) == [
        "rules.0.description: Field required",
        "rules.0.window: Field required",
        "rules.0.levels: Field required",
    ]


def test_every_error_is_listed_at_once(catalogue):
    assert errors(catalogue, GOOD, GOOD | {"levels": {}}, GOOD | {"indicator": "rf9.x"}, version=0) == [
        "version: Input should be greater than or equal to 1",
        "rules.1.id: duplicate rule id 'r1' (first at rules.0)",
        "rules.1.levels: at least one of watch, warning, critical is needed",
        "rules.2.id: duplicate rule id 'r1' (first at rules.0)",
        "rules.2.indicator: indicator 'rf9.x' is not in the catalogue",
    ]


def test_file_errors(tmp_path, catalogue):
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules: [\n")
    with pytest.raises(RulesError) as caught:
        load_rules(bad, catalogue)
    assert caught.value.errors[0].startswith("<root>: invalid YAML: while parsing a flow node")
    bad.write_text("- just a list\n")
    with pytest.raises(RulesError) as caught:
        load_rules(bad, catalogue)
    assert caught.value.errors == ["<root>: the rules file must be a mapping with 'version' and 'rules'"]
    with pytest.raises(RulesError) as caught:
        load_rules(tmp_path / "missing.yaml", catalogue)
    assert caught.value.errors == ["<root>: cannot read missing.yaml: No such file or directory"]


def test_the_packaged_rules_load_and_name_no_country(catalogue):
    ruleset = load_rules(None, catalogue)
    assert {r.kind for r in ruleset.rules} == {"threshold", "rate_of_change", "anomaly", "risk_score"}
    assert all(len(r.description) > 40 for r in ruleset.rules)
    # the same rules for every country: a rule cannot single one out
    assert errors(catalogue, GOOD | {"country": "SDN"}) == ["rules.0.country: Extra inputs are not permitted"]


def test_rule_version_changes_with_the_rule_text(catalogue):
    a = parse_rules({"version": 1, "rules": [GOOD]}, catalogue).rules[0]
    b = parse_rules({"version": 1, "rules": [GOOD | {"levels": {"watch": 6}}]}, catalogue).rules[0]
    assert a.version != b.version
    assert (
        a.version
        == parse_rules({"version": 1, "rules": [dict(reversed(GOOD.items()))]}, catalogue).rules[0].version
    )


def test_signals_are_routed_to_the_rules_reading_them(catalogue):
    ruleset = load_rules(None, catalogue)
    week, day, hour = 7 * 86_400_000, 86_400_000, 3_600_000
    midnight = 1_700_000_000_000 // day * day
    assert [
        r.id for r in ruleset.reading("rf1.armed_conflict", midnight - week, midnight, regional=False)
    ] == ["armed-conflict-deaths", "armed-conflict-deaths-escalation", "country-risk-score"]
    assert (
        ruleset.reading("rf1.armed_conflict", midnight + hour - week, midnight + hour, regional=False) == []
    )
    assert [
        r.id
        for r in ruleset.reading(
            "rf11.attack_on_civilians", midnight + hour - day, midnight + hour, regional=False
        )
    ] == ["attacks-on-civilians"]
    assert ruleset.reading("rf1.armed_conflict", midnight - week, midnight, regional=True) == []


def test_a_share_rule_reads_the_volume_it_divides_by(catalogue):
    rule = {**GOOD, "window": "7d/1d", "indicator": "rf2.killings_reported", "share_of": "volume.reports"}
    ruleset = parse_rules({"version": 1, "rules": [rule]}, catalogue)
    (parsed,) = ruleset.rules
    assert parsed.indicator_ids == ("rf2.killings_reported",)  # what its alerts are about
    day = 86_400_000
    end = 1_700_000_000_000 // day * day
    assert [r.id for r in ruleset.reading("volume.reports", end - 7 * day, end, regional=False)] == ["r1"]
    score = {
        **GOOD,
        "kind": "risk_score",
        "indicators": {"rf1.armed_conflict": {"weight": 1, "saturation": 1}},
    }
    del score["indicator"]
    assert errors(catalogue, score | {"share_of": "volume.reports"}) == [
        "rules.0: 'share_of' is only for kind threshold or rate_of_change or anomaly"
    ]
