"""The declarative indicator catalogue (`catalogue.yaml`): load, validate, resolve the keyword lexicons.

Each indicator names its risk factors of the UN Framework of Analysis for Atrocity Crimes (2014) and, where it
maps to one, the Framework's indicator numbers, and matches observations on CAMEO event/base/root codes (with
an optional Goldstein ceiling), UCDP type of violence (with optional minimum deaths) and keyword lexicons per
language. Validation lists every error with its path, e.g. `indicators.3.weight: Input should be greater than
0`, and raises one `CatalogueError`.

Lexicons: the project's own small lists sit beside the catalogue (`lexicons/<name>.<lang>.txt`, one term or
phrase a line, `#` comments; a trailing `*` on a word matches any ending). External lexicons (e.g. HurtLex,
CC BY-NC-SA, never bundled) are declared under `external_lexicons` with file paths relative to a directory
given at load time (`external_dir`, or the TOCSIN_EXTERNAL_LEXICONS environment variable); a missing external
lexicon is an error only for an enabled indicator.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from tocsin.pipelines.indicators.folding import fold
from tocsin.validation import ConfigErrors, StrictModel, error_messages, read_yaml, str_keys

EXTERNAL_DIR_ENV = "TOCSIN_EXTERNAL_LEXICONS"
RISK_FACTORS = range(1, 15)
UCDP_VIOLENCE_TYPES = {1: "state-based", 2: "non-state", 3: "one-sided"}

INDICATOR_ID = re.compile(r"^(?P<theme>[a-z][a-z0-9]*)\.[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
RF_THEME = re.compile(r"^rf(?P<n>[0-9]+)$")
FRAMEWORK_INDICATOR = re.compile(r"^(?P<rf>[0-9]{1,2})\.[1-9][0-9]?$")
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
LANGUAGE = re.compile(r"^[a-z]{2}$")
TERM_WORD = re.compile(r"^[^\s*]+\*?$")


class CatalogueError(ConfigErrors):
    kind = "indicator catalogue"


# ---------------------------------------------------------------------------------------------- field types


def _indicator_id(value: str) -> str:
    found = INDICATOR_ID.match(value)
    if not found:
        raise ValueError(f"indicator id {value!r} is not rf<N>.<snake_name> or <theme>.<snake_name>")
    rf = RF_THEME.match(found["theme"])
    if rf and int(rf["n"]) not in RISK_FACTORS:
        raise ValueError(f"indicator id {value!r} names risk factor {rf['n']}; risk factors are 1-14")
    return value


def _risk_factor(value: int) -> int:
    if value not in RISK_FACTORS:
        raise ValueError(f"risk factor {value} does not exist: the Framework has risk factors 1-14")
    return value


def _framework_indicator(value: str) -> str:
    found = FRAMEWORK_INDICATOR.match(value)
    if not found or int(found["rf"]) not in RISK_FACTORS:
        raise ValueError(f"framework indicator {value!r} is not <risk factor 1-14>.<number> (e.g. '7.3')")
    return value


def _quoted(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError("CAMEO codes must be quoted strings ('190', not 190)")
    return value


def _digits(kind: str, low: int, high: int):
    span = f"{low}-{high} digits" if low != high else f"{low} digits"

    def check(value: str) -> str:
        if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
            raise ValueError(f"CAMEO {kind} code {value!r} is not {span}")
        return value

    return check


def _violence_type(value: int) -> int:
    if value not in UCDP_VIOLENCE_TYPES:
        raise ValueError(
            f"UCDP type of violence {value} does not exist: 1 state-based, 2 non-state, 3 one-sided"
        )
    return value


def _language(value: str) -> str:
    if not LANGUAGE.match(value):
        raise ValueError(f"language {value!r} is not an ISO 639-1 code")
    return value


def _snake(what: str):
    def check(value: str) -> str:
        if not SNAKE.match(value):
            raise ValueError(f"{what} {value!r} is not a snake_case name")
        return value

    return check


def _pattern(value: str) -> str:
    try:
        re.compile(value)
    except re.error as error:
        raise ValueError(f"invalid regular expression {value!r}: {error}") from None
    return value


IndicatorId = Annotated[str, AfterValidator(_indicator_id)]
RiskFactor = Annotated[int, AfterValidator(_risk_factor)]
FrameworkIndicator = Annotated[str, AfterValidator(_framework_indicator)]
EventCode = Annotated[str, BeforeValidator(_quoted), AfterValidator(_digits("event", 2, 4))]
BaseCode = Annotated[str, BeforeValidator(_quoted), AfterValidator(_digits("base", 3, 3))]
RootCode = Annotated[str, BeforeValidator(_quoted), AfterValidator(_digits("root", 2, 2))]
Label = Annotated[str, Field(min_length=1)]
ViolenceType = Annotated[int, AfterValidator(_violence_type)]
Language = Annotated[str, AfterValidator(_language)]
LexiconName = Annotated[str, AfterValidator(_snake("lexicon name"))]
ExternalName = Annotated[str, AfterValidator(_snake("external lexicon name"))]
Pattern = Annotated[str, AfterValidator(_pattern)]
Text = Annotated[str, Field(min_length=1)]


# ---------------------------------------------------------------------------------------------- models


class CameoRule(StrictModel):
    """CAMEO codes, each with its codebook description (used in match reasons)."""

    event: dict[EventCode, Label] = {}
    base: dict[BaseCode, Label] = {}
    root: dict[RootCode, Label] = {}

    @model_validator(mode="after")
    def _not_empty(self) -> CameoRule:
        if not (self.event or self.base or self.root):
            raise ValueError("cameo lists no event, base or root codes")
        return self


class Keywords(StrictModel):
    """Keyword sources for one language: bundled lexicons, external lexicons, regular expressions; and
    `unless` lexicons, whose terms void the match ("Cholera outbreak kills 27" is not a killing)."""

    lexicons: list[LexiconName] = []
    external: list[ExternalName] = []
    patterns: list[Pattern] = []
    unless: list[LexiconName] = []

    @model_validator(mode="after")
    def _not_empty(self) -> Keywords:
        if not (self.lexicons or self.external or self.patterns):
            raise ValueError("keywords list no lexicons, external lexicons or patterns")
        return self


class MatchRules(StrictModel):
    cameo: CameoRule | None = None
    goldstein_max: float | None = Field(default=None, ge=-10, le=10)
    ucdp_violence_types: list[ViolenceType] = []
    min_deaths: int | None = Field(default=None, ge=0)
    # Civilians killed, whatever the type of violence (UCDP deaths_civilians): most civilians are killed
    # in state-based and non-state fighting, not in one-sided violence.
    min_civilian_deaths: int | None = Field(default=None, ge=1)
    # Every observation (of the indicator's source types): the volume of reports a rule takes a share
    # of (`share_of`), so that a country's alerts do not simply follow how much is written about it.
    every_report: bool = False
    keywords: dict[Language, Keywords] = {}

    @model_validator(mode="after")
    def _consistent(self) -> MatchRules:
        if self.goldstein_max is not None and self.cameo is None:
            raise ValueError("goldstein_max needs cameo codes")
        if self.min_deaths is not None and not self.ucdp_violence_types:
            raise ValueError("min_deaths needs ucdp_violence_types")
        if (
            self.cameo is None
            and not self.ucdp_violence_types
            and not self.keywords
            and self.min_civilian_deaths is None
            and not self.every_report
        ):
            raise ValueError(
                "match needs at least one of cameo, ucdp_violence_types, min_civilian_deaths, keywords"
            )
        return self


SourceTypeName = Literal[
    "CONFLICT_DATA", "EVENT_DATA", "FIELD_MONITOR", "CIVIL_SOCIETY", "NEWS", "UN_REPORT", "OTHER"
]


class Indicator(StrictModel):
    id: IndicatorId
    title: Text
    risk_factors: list[RiskFactor] = []  # at least one, unless the indicator counts every report
    framework_indicators: list[FrameworkIndicator] = []
    description: Text
    sources: list[Text] = Field(min_length=1)
    weight: float = Field(gt=0)
    enabled: bool = True
    # Which deaths a hit of this indicator counts in its signal's `fatalities`: all, or the civilians.
    deaths: Literal["all", "civilians"] = "all"
    # The kinds of source the indicator reads (default all): an indicator of what reports *say* is not
    # matched on a curated dataset's free-text notes, whose events other indicators already count.
    source_types: list[SourceTypeName] | None = None
    match: MatchRules

    @model_validator(mode="after")
    def _risk_factors_agree(self) -> Indicator:
        problems = []
        if not self.risk_factors and not self.match.every_report:
            raise ValueError("risk_factors: at least one is needed (only an every_report indicator has none)")
        rf = RF_THEME.match(self.id.split(".", 1)[0])
        if rf and int(rf["n"]) not in self.risk_factors:
            problems.append(
                f"indicator id {self.id!r} names risk factor {rf['n']}, "
                f"which is not in risk_factors {self.risk_factors}"
            )
        for number in self.framework_indicators:
            owner = int(number.split(".")[0])
            if owner not in self.risk_factors:
                problems.append(
                    f"framework indicator {number!r} belongs to risk factor {owner}, "
                    f"which is not in risk_factors {self.risk_factors}"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ExternalLexicon(StrictModel):
    """A lexicon the project may not bundle, read from the external directory given at load time."""

    description: Text
    licence: Text
    files: dict[Language, Text] = Field(min_length=1)
    format: Literal["lines", "tsv"] = "lines"
    term_column: str | None = None
    where: dict[str, list[str]] = {}

    @model_validator(mode="after")
    def _columns(self) -> ExternalLexicon:
        if self.format == "tsv" and not self.term_column:
            raise ValueError("term_column is required for format tsv")
        if self.format == "lines" and (self.term_column or self.where):
            raise ValueError("term_column and where apply to format tsv only")
        return self


class _Document(StrictModel):
    version: Literal[1]
    lexicon_dir: Text = "lexicons"
    external_lexicons: dict[ExternalName, ExternalLexicon] = {}
    indicators: list[Any] = Field(min_length=1)


class Term(BaseModel):
    """One lexicon entry, folded; `origin` is None for the project's lexicons, else the external name."""

    model_config = ConfigDict(frozen=True)

    text: str
    origin: str | None = None


class Catalogue(StrictModel):
    version: Literal[1]
    indicators: list[Indicator]
    external_lexicons: dict[str, ExternalLexicon] = {}
    # indicator id -> language -> terms, resolved at load
    _terms: dict[str, dict[str, tuple[Term, ...]]] = PrivateAttr(default_factory=dict)
    _unless: dict[str, dict[str, tuple[str, ...]]] = PrivateAttr(default_factory=dict)
    _matchers: Any = PrivateAttr(default=None)

    def terms(self, indicator_id: str) -> dict[str, tuple[Term, ...]]:
        return self._terms.get(indicator_id, {})

    def unless_terms(self, indicator_id: str) -> dict[str, tuple[str, ...]]:
        """Per language, the folded terms that void the indicator's keyword matches."""
        return self._unless.get(indicator_id, {})

    def enabled(self) -> list[Indicator]:
        return [i for i in self.indicators if i.enabled]

    def by_id(self, indicator_id: str) -> Indicator:
        for indicator in self.indicators:
            if indicator.id == indicator_id:
                return indicator
        raise KeyError(indicator_id)


# ---------------------------------------------------------------------------------------------- loading


def packaged_catalogue_path() -> Path:
    try:
        base = resources.files("tocsin.pipelines.indicators")
    except ModuleNotFoundError:  # not installed as a package yet
        return Path(__file__).parent / "catalogue.yaml"
    return Path(str(base.joinpath("catalogue.yaml")))


def load_catalogue(
    path: Path | str | None = None,
    *,
    external_dir: Path | str | None = None,
    enable: Iterable[str] = (),
) -> Catalogue:
    """Load and validate a catalogue (default: the packaged one); raise CatalogueError listing every error.

    `enable` switches on indicators the file declares disabled (e.g. those needing an external lexicon).
    """
    path = Path(path) if path else packaged_catalogue_path()
    return parse_catalogue(
        read_yaml(path, CatalogueError), base_dir=path.parent, external_dir=external_dir, enable=enable
    )


def parse_catalogue(
    data: Any,
    *,
    base_dir: Path | str,
    external_dir: Path | str | None = None,
    enable: Iterable[str] = (),
) -> Catalogue:
    """Validate an already parsed catalogue; lexicon files are resolved against base_dir."""
    base_dir = Path(base_dir)
    if external_dir is None and os.environ.get(EXTERNAL_DIR_ENV):
        external_dir = os.environ[EXTERNAL_DIR_ENV]
    errors: list[str] = []
    if not isinstance(data, dict):
        raise CatalogueError(["<root>: the catalogue must be a mapping"])
    try:
        document = _Document.model_validate(data)
    except ValidationError as error:
        errors.extend(error_messages(error))
        document = None
    raw_indicators = data.get("indicators") if isinstance(data.get("indicators"), list) else []
    declared = set(document.external_lexicons) if document else set(str_keys(data.get("external_lexicons")))
    lexicon_dir = base_dir / (document.lexicon_dir if document else "lexicons")
    enable = list(enable)
    ids = [raw.get("id") if isinstance(raw, dict) else None for raw in raw_indicators]
    for name in enable:
        if name not in ids:
            errors.append(f"enable: no indicator {name!r} in the catalogue")

    indicators: list[Indicator] = []
    terms: dict[str, dict[str, tuple[Term, ...]]] = {}
    unless: dict[str, dict[str, tuple[str, ...]]] = {}
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_indicators):
        where = f"indicators.{index}"
        if isinstance(raw, dict) and isinstance(raw.get("id"), str):
            if raw["id"] in first_seen:
                first = first_seen[raw["id"]]
                errors.append(
                    f"{where}.id: duplicate indicator id {raw['id']!r} (first at indicators.{first})"
                )
            else:
                first_seen[raw["id"]] = index
        try:
            indicator = Indicator.model_validate(raw)
        except ValidationError as error:
            errors.extend(error_messages(error, prefix=(where,)))
            continue
        if indicator.id in enable:
            indicator = indicator.model_copy(update={"enabled": True})
        resolved, problems = _resolve_terms(
            indicator, where, lexicon_dir, base_dir, declared, document, external_dir
        )
        errors.extend(problems)
        unless_found, problems = _resolve_unless(indicator, where, lexicon_dir, base_dir)
        errors.extend(problems)
        indicators.append(indicator)
        terms[indicator.id] = resolved
        unless[indicator.id] = unless_found
    if errors:
        raise CatalogueError(errors)
    catalogue = Catalogue(
        version=document.version, indicators=indicators, external_lexicons=document.external_lexicons
    )
    catalogue._terms = terms
    catalogue._unless = unless
    return catalogue


def _resolve_unless(indicator: Indicator, where: str, lexicon_dir: Path, base_dir: Path):
    resolved: dict[str, tuple[str, ...]] = {}
    errors: list[str] = []
    for language, keywords in indicator.match.keywords.items():
        found: list[str] = []
        for number, name in enumerate(keywords.unless):
            file = lexicon_dir / f"{name}.{language}.txt"
            shown = _shown(file, base_dir)
            if not file.is_file():
                at = f"{where}.match.keywords.{language}.unless.{number}"
                errors.append(f"{at}: lexicon file {shown} not found")
                continue
            words, problems = read_lexicon(file.read_text(encoding="utf-8"), shown)
            errors.extend(f"{where}.match.keywords.{language}.unless.{number}: {p}" for p in problems)
            found.extend(words)
        if found:
            resolved[language] = tuple(dict.fromkeys(found))
    return resolved, errors


def _resolve_terms(
    indicator: Indicator,
    where: str,
    lexicon_dir: Path,
    base_dir: Path,
    declared: set[str],
    document: _Document | None,
    external_dir: Path | str | None,
) -> tuple[dict[str, tuple[Term, ...]], list[str]]:
    resolved: dict[str, tuple[Term, ...]] = {}
    errors: list[str] = []
    for language, keywords in indicator.match.keywords.items():
        at = f"{where}.match.keywords.{language}"
        found: list[Term] = []
        for number, name in enumerate(keywords.lexicons):
            file = lexicon_dir / f"{name}.{language}.txt"
            shown = _shown(file, base_dir)
            if not file.is_file():
                errors.append(f"{at}.lexicons.{number}: lexicon file {shown} not found")
                continue
            words, problems = read_lexicon(file.read_text(encoding="utf-8"), shown)
            errors.extend(f"{at}.lexicons.{number}: {p}" for p in problems)
            found.extend(Term(text=w) for w in words)
        for number, name in enumerate(keywords.external):
            if name not in declared:
                errors.append(f"{at}.external.{number}: external lexicon {name!r} is not declared")
                continue
            if document is None:
                continue
            spec = document.external_lexicons[name]
            if language not in spec.files:
                errors.append(
                    f"{at}.external.{number}: external lexicon {name!r} has no file for {language!r}"
                )
                continue
            if not indicator.enabled:
                continue  # resolved only for enabled indicators
            if external_dir is None:
                errors.append(
                    f"{at}.external.{number}: external lexicon {name!r} needs a directory: "
                    f"pass external_dir or set {EXTERNAL_DIR_ENV}"
                )
                continue
            file = Path(external_dir) / spec.files[language]
            if not file.is_file():
                errors.append(
                    f"{at}.external.{number}: external lexicon {name!r} ({language}) not found: {file}"
                )
                continue
            words, problems = read_external(spec, file)
            errors.extend(f"{at}.external.{number}: {p}" for p in problems)
            found.extend(Term(text=w, origin=name) for w in words)
        resolved[language] = tuple(dict.fromkeys(found))
    return resolved, errors


def _shown(file: Path, base_dir: Path) -> str:
    try:
        return file.relative_to(base_dir).as_posix()
    except ValueError:
        return str(file)


def read_lexicon(text: str, shown: str) -> tuple[list[str], list[str]]:
    """Folded terms of a lexicon file, and its problems ('<file> line N: ...')."""
    terms, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        term = " ".join(line.split())
        if not term or term.startswith("#"):
            continue
        bad = [w for w in term.split(" ") if not TERM_WORD.match(w) or w == "*"]
        if bad:
            problems.append(f"{shown} line {number}: {term!r}: '*' is allowed only at the end of a word")
            continue
        terms.append(fold(term))
    if not terms and not problems:
        problems.append(f"{shown} has no terms")
    return list(dict.fromkeys(terms)), problems


def read_external(spec: ExternalLexicon, file: Path) -> tuple[list[str], list[str]]:
    text = file.read_text(encoding="utf-8", errors="replace")
    if spec.format == "lines":
        return read_lexicon(text, str(file))
    rows = csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = rows.fieldnames or []
    missing = [c for c in [spec.term_column, *spec.where] if c not in header]
    if missing:
        return [], [f"{file}: column {c!r} not in header" for c in missing]
    terms = []
    for row in rows:
        if all(row[column] in values for column, values in spec.where.items()):
            term = " ".join(fold(row[spec.term_column] or "").replace("*", " ").split())
            if term:
                terms.append(term)
    return list(dict.fromkeys(terms)), []
