"""`--sweep RULE[=V1,V2,...]`: the same signals under a grid of thresholds for one rule.

Each point moves the rule's lowest level to a value and scales its other levels and `resolve_below` by
the same factor, so the rule keeps its shape (its hysteresis and the distance between severities). The
signals do not depend on thresholds, so a sweep re-decides only the alerts: one lifecycle replay per point.
Without values, the grid is the rule's own lowest level times 1/4, 1/2, 1, 2 and 4.
"""

from __future__ import annotations

from collections.abc import Callable

from tocsin.pipelines.rules.config import Rule, RuleSet

DEFAULT_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


class SweepError(ValueError):
    pass


def parse_sweep(text: str, ruleset: RuleSet) -> tuple[str, list[float]]:
    """'rule-id' or 'rule-id=5,10,20' -> (rule id, lowest-level values)."""
    rule_id, _, values = text.partition("=")
    rule_id = rule_id.strip()
    try:
        rule = ruleset.by_id(rule_id)
    except KeyError:
        known = ", ".join(r.id for r in ruleset.rules)
        raise SweepError(f"--sweep {text}: no rule {rule_id!r} (the rules are: {known})") from None
    lowest = min(rule.levels.values())
    if not values.strip():
        return rule_id, [round(lowest * f, 6) for f in DEFAULT_FACTORS]
    try:
        grid = sorted({float(v) for v in values.split(",") if v.strip()})
    except ValueError:
        raise SweepError(f"--sweep {text}: values must be numbers separated by commas") from None
    if not grid or any(v <= 0 for v in grid):
        raise SweepError(f"--sweep {text}: values must be positive numbers")
    return rule_id, grid


def scaled(rule: Rule, lowest: float) -> Rule:
    """The rule with its lowest level at `lowest`, other levels and resolve_below scaled alike."""
    factor = lowest / min(rule.levels.values())
    data = rule.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["levels"] = {k: round(v * factor, 6) for k, v in rule.levels.items()}
    if rule.resolve_below is not None:
        data["resolve_below"] = round(rule.resolve_below * factor, 6)
    return Rule.model_validate(data)


def sweep(
    ruleset: RuleSet,
    rule_id: str,
    values: list[float],
    decide: Callable[[RuleSet], list[dict]],
    judge: Callable[[list[dict]], dict],
) -> dict:
    """{rule, parameter, points}: `decide` replays the alerts of a one-rule set, `judge` scores them."""
    rule = ruleset.by_id(rule_id)
    points = []
    for value in values:
        variant = RuleSet(
            version=ruleset.version, rules=(scaled(rule, value),), risk_factors=ruleset.risk_factors
        )
        alerts = decide(variant)
        t = judge(alerts)
        points.append(
            {
                "value": value,
                "alerts": t["alerts"],
                "episodes": t["episodes"],
                "warned": t["warned"],
                "recall": t["recall"],
                "precision": t["country_year"]["precision"],
                "false_alarms_per_country_year": t["false_alarm_days_per_country_year"],
                "lead_time_days": t["lead_time_days"]["median"],
            }
        )
    return {"rule": rule_id, "parameter": "lowest level", "points": points}
