"""Threshold rules in YAML: parsed strictly, validated at load with every error listed, then trusted.

The same rules apply to every country: a rule has no country filter, by design (the seeds ask for
objective, non-selective criteria). A rule reads one series of signals, those of its indicator(s) for
one window spec (`window: 1d/1h`) per country (or per region with `per: region`), and measures one value:

- threshold      the signal field itself;
- rate_of_change the field against the mean of the `previous` non-overlapping windows before it;
- anomaly        the field against a trailing baseline of `baseline` non-overlapping windows of the same
                 place (z-score or ratio), once `min_history` of them exist, so that a country's usual
                 media coverage is its own yardstick;
- risk_score     0-100 across indicators: sum of weight * min(value / saturation, 1), over the weights.

With `share_of: volume.reports` a threshold, rate or anomaly rule measures its field as a percentage of all
the place's reports in the window, so that coverage rising or falling does not by itself raise or resolve
an alert; `min_value` still applies to the field itself.

`levels` maps severities (watch < warning < critical) to the value each needs; the alert fires at the
lowest level once the value reached it in `for` consecutive windows with at least `min_sources` distinct
sources, and resolves only when the value falls below `resolve_below` (hysteresis; default the lowest
level).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tocsin.pipelines.indicators.catalogue import Catalogue
from tocsin.pipelines.windowspec import WindowSpec
from tocsin.validation import ConfigErrors, StrictModel, error_messages, read_yaml, str_keys

SEVERITIES = ("watch", "warning", "critical")
FIELDS = ("count", "weighted_count", "fatalities", "distinct_sources")
# The signal field each kind of corroboration reads.
CORROBORATION = {"any": "distinct_sources", "publishers": "distinct_origins", "reported": "reported_sources"}
KINDS = ("threshold", "rate_of_change", "anomaly", "risk_score")
RULE_ID = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
# Options that only make sense for some kinds: naming one elsewhere is an error, not silently ignored.
ONLY_FOR = {
    "indicator": ("threshold", "rate_of_change", "anomaly"),
    "indicators": ("risk_score",),
    "previous": ("rate_of_change",),
    "baseline": ("anomaly",),
    "min_history": ("anomaly",),
    "method": ("anomaly",),
    "min_value": ("rate_of_change", "anomaly"),
    "share_of": ("threshold", "rate_of_change", "anomaly"),
}


class RulesError(ConfigErrors):
    kind = "rules"


class Weight(StrictModel):
    weight: float = Field(gt=0)
    saturation: float = Field(gt=0, description="Value at which the indicator counts in full")


class Rule(StrictModel):
    id: str
    description: str = Field(min_length=1)
    kind: Literal["threshold", "rate_of_change", "anomaly", "risk_score"]
    window: str
    per: Literal["country", "region"] = "country"
    field: Literal["count", "weighted_count", "fatalities", "distinct_sources"] = "count"
    levels: dict[Literal["watch", "warning", "critical"], float]
    resolve_below: float | None = None
    for_windows: int = Field(default=1, ge=1, alias="for")
    min_sources: int = Field(default=1, ge=1)
    # Which corroboration min_sources counts: independent publishers, the sources an event reports for
    # itself (a curated dataset's own count), or the larger of the two (any).
    corroboration: Literal["any", "publishers", "reported"] = "any"
    indicator: str | None = None
    indicators: dict[str, Weight] | None = None
    previous: int | None = Field(default=None, ge=1)
    baseline: int | None = Field(default=None, ge=2)
    min_history: int | None = Field(default=None, ge=2)
    method: Literal["zscore", "ratio"] | None = None
    min_value: float | None = Field(default=None, ge=0)
    # Measure the field as a percentage of this indicator's count in the same window (the volume of
    # reports, `volume.reports`): a share of coverage, not a number of reports.
    share_of: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not RULE_ID.match(value):
            raise ValueError(f"rule id {value!r} must be lower case words joined by '-', '_' or '.'")
        return value

    @field_validator("window")
    @classmethod
    def _window(cls, value: str) -> str:
        WindowSpec.parse(value)  # raises ValueError with the exact problem
        return value

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: dict) -> dict:
        if not value:
            raise ValueError("at least one of watch, warning, critical is needed")
        ordered = [value[s] for s in SEVERITIES if s in value]
        if any(b <= a for a, b in zip(ordered, ordered[1:], strict=False)):
            raise ValueError("levels must increase from watch to warning to critical")
        return value

    @model_validator(mode="before")
    @classmethod
    def _kind_options(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("kind") not in KINDS:
            return data
        errors = [
            f"{name!r} is only for kind {' or '.join(kinds)}"
            for name, kinds in ONLY_FOR.items()
            if name in data and data["kind"] not in kinds
        ]
        if data["kind"] == "risk_score" and "indicators" not in data:
            errors.append("kind risk_score needs 'indicators' (indicator: {weight, saturation})")
        if data["kind"] != "risk_score" and "indicator" not in data:
            errors.append(f"kind {data['kind']} needs 'indicator'")
        if errors:
            raise ValueError("; ".join(errors))
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        lowest = min(self.levels.values())
        if self.resolve_below is not None and self.resolve_below > lowest:
            raise ValueError(
                f"resolve_below ({self.resolve_below:g}) must not exceed the lowest level ({lowest:g})"
            )
        if self.min_history is not None and self.min_history > self.baseline_windows:
            raise ValueError(
                f"min_history ({self.min_history}) must not exceed baseline ({self.baseline_windows})"
            )
        return self

    # Defaults per kind live here, not in the fields, so that naming an option for the wrong kind is caught.
    @property
    def previous_windows(self) -> int:
        return self.previous or 1

    @property
    def baseline_windows(self) -> int:
        return self.baseline or 28

    @property
    def min_history_windows(self) -> int:
        return self.min_history or min(7, self.baseline_windows)

    @property
    def anomaly_method(self) -> str:
        return self.method or "zscore"

    @property
    def floor(self) -> float:
        return self.min_value or 0.0

    @property
    def resolve_threshold(self) -> float:
        return self.resolve_below if self.resolve_below is not None else min(self.levels.values())

    @property
    def spec(self) -> WindowSpec:
        return WindowSpec.parse(self.window)

    @property
    def size_ms(self) -> int:
        return self.spec.size_s * 1000

    @property
    def period_ms(self) -> int:
        return self.spec.period_s * 1000

    @property
    def indicator_ids(self) -> tuple[str, ...]:
        """The indicators the rule measures (its alerts' indicators and risk factors)."""
        return tuple(sorted(self.indicators)) if self.indicators else (self.indicator,)

    @property
    def read_ids(self) -> tuple[str, ...]:
        """The indicators whose signals the rule reads: those it measures and the one it divides by."""
        return (*self.indicator_ids, self.share_of) if self.share_of else self.indicator_ids

    @property
    def history_windows(self) -> int:
        """How many non-overlapping windows of history an evaluation reads (for state and commits)."""
        back = {"rate_of_change": self.previous_windows, "anomaly": self.baseline_windows}
        span_ms = back.get(self.kind, 0) * self.size_ms + self.for_windows * self.period_ms
        return -(-span_ms // self.size_ms) + 1

    @property
    def version(self) -> str:
        """Digest of the rule's definition: an alert names the exact rule text that raised it."""
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class _Document(StrictModel):
    version: int = Field(ge=1)
    rules: list[dict]


class RuleSet(BaseModel):
    model_config = ConfigDict(frozen=True)
    version: int
    rules: tuple[Rule, ...]
    risk_factors: dict[str, tuple[int, ...]]  # indicator id -> risk factors, from the catalogue

    def by_id(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)

    def reading(self, indicator_id: str, start_ms: int, end_ms: int, regional: bool) -> list[Rule]:
        """Rules that read a signal of this indicator, window and kind of place.

        A signal's period is not on it: a rule reads the signals of its window size whose end falls on its
        period (so a 1d/1d rule reads the midnight windows of a 1d/1h series).
        """
        per = "region" if regional else "country"
        return [
            r
            for r in self.rules
            if indicator_id in r.read_ids
            and r.per == per
            and r.size_ms == end_ms - start_ms
            and end_ms % r.period_ms == 0
        ]


def packaged_rules_path() -> Path:
    return Path(__file__).parent / "rules.yaml"


def load_rules(path: Path | str | None, catalogue: Catalogue) -> RuleSet:
    """Load and validate a rules file (default: the packaged one); raise RulesError listing every error."""
    path = Path(path) if path else packaged_rules_path()
    return parse_rules(read_yaml(path, RulesError), catalogue)


def parse_rules(data: Any, catalogue: Catalogue) -> RuleSet:
    if not isinstance(data, dict):
        raise RulesError(["<root>: the rules file must be a mapping with 'version' and 'rules'"])
    errors: list[str] = []
    try:
        document = _Document.model_validate(data)
    except ValidationError as error:
        errors.extend(error_messages(error))
        document = None
    raw_rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    known = {i.id: i for i in catalogue.indicators}
    rules: list[Rule] = []
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_rules):
        where = f"rules.{index}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            if raw["id"] in first_seen:
                errors.append(
                    f"{where}.id: duplicate rule id {raw['id']!r} (first at rules.{first_seen[raw['id']]})"
                )
            else:
                first_seen[raw["id"]] = index
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as error:
            errors.extend(error_messages(error, prefix=(where,)))
        # References are checked on the raw rule too, so one run lists them with the other errors.
        if isinstance(raw, dict):
            if isinstance(raw.get("indicator"), str):
                errors.extend(_indicator_errors(f"{where}.indicator", raw["indicator"], known))
            for name in str_keys(raw.get("indicators")):
                errors.extend(_indicator_errors(f"{where}.indicators.{name}", name, known))
            if isinstance(raw.get("share_of"), str):
                errors.extend(_indicator_errors(f"{where}.share_of", raw["share_of"], known))
    if errors:
        raise RulesError(errors)
    risk_factors = {i.id: tuple(i.risk_factors) for i in catalogue.indicators}
    return RuleSet(version=document.version, rules=tuple(rules), risk_factors=risk_factors)


def _indicator_errors(where: str, name: str, known: dict) -> list[str]:
    if name not in known:
        return [f"{where}: indicator {name!r} is not in the catalogue"]
    if not known[name].enabled:
        return [f"{where}: indicator {name!r} is disabled in the catalogue (enable it or drop the rule)"]
    return []
