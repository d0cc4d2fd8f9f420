"""`--sweep`: a rule's thresholds scaled as one, and the grid parsed with exact errors."""

from __future__ import annotations

import pytest

from tocsin.pipelines.backtest.sweep import SweepError, parse_sweep, scaled, sweep
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.rules.config import load_rules


@pytest.fixture(scope="module")
def ruleset():
    return load_rules(None, load_catalogue())


def test_scaling_keeps_the_rule_shape(ruleset):
    rule = ruleset.by_id("armed-conflict-deaths")  # watch 10, warning 100, critical 1000, resolve below 5
    half = scaled(rule, 5)
    assert half.levels == {"watch": 5, "warning": 50, "critical": 500}
    assert half.resolve_below == 2.5
    assert (half.window, half.field, half.kind) == (rule.window, rule.field, rule.kind)
    assert half.version != rule.version  # an alert names the exact rule text that raised it


def test_grid_given_and_default(ruleset):
    assert parse_sweep("armed-conflict-deaths=20, 5,10", ruleset) == ("armed-conflict-deaths", [5, 10, 20])
    assert parse_sweep("armed-conflict-deaths", ruleset) == (
        "armed-conflict-deaths",
        [2.5, 5.0, 10.0, 20.0, 40.0],
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope=1", "--sweep nope=1: no rule 'nope' (the rules are: "),
        ("armed-conflict-deaths=a,b", "--sweep armed-conflict-deaths=a,b: values must be numbers"),
        ("armed-conflict-deaths=0,5", "--sweep armed-conflict-deaths=0,5: values must be positive numbers"),
    ],
)
def test_bad_grids(ruleset, text, message):
    with pytest.raises(SweepError) as caught:
        parse_sweep(text, ruleset)
    assert str(caught.value).startswith(message)


def test_each_point_decides_a_one_rule_set(ruleset):
    seen = []

    def decide(variant):
        (rule,) = variant.rules
        seen.append(rule.levels["watch"])
        return [{"watch": rule.levels["watch"]}]

    def judge(alerts):
        v = alerts[0]["watch"]
        return {
            "alerts": 1,
            "episodes": 2,
            "warned": int(v < 10),
            "recall": 0.5 if v < 10 else 0.0,
            "country_year": {"precision": 0.25},
            "false_alarm_days_per_country_year": 100 / v,
            "lead_time_days": {"median": 30.0},
        }

    result = sweep(ruleset, "armed-conflict-deaths", [5, 20], decide, judge)
    assert seen == [5, 20]
    assert result["points"] == [
        {"value": 5, "alerts": 1, "episodes": 2, "warned": 1, "recall": 0.5, "precision": 0.25,
         "false_alarms_per_country_year": 20.0, "lead_time_days": 30.0},
        {"value": 20, "alerts": 1, "episodes": 2, "warned": 0, "recall": 0.0, "precision": 0.25,
         "false_alarms_per_country_year": 5.0, "lead_time_days": 30.0},
    ]  # fmt: skip
