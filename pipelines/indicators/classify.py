"""Classify one observation against the indicator catalogue: pure functions, matchers compiled once.

`classify(catalogue, observation)` returns a `Match(indicator_id, weight, reasons)` for each enabled indicator
the observation meets, in catalogue order. An indicator matches when any of its rules does:

- cameo: one of its event, base or root codes is among the observation's `event_codes` ('cameo:1821',
  'cameo-base:182', 'cameo-root:18'; base and root are also derived from a bare event code), and, with
  `goldstein_max`, the observation's Goldstein score is known and at most that ceiling;
- ucdp: `violence_type` is one of `ucdp_violence_types` and `fatalities` reaches `min_deaths` if set;
- civilians: `min_civilian_deaths` civilians or more were killed, whatever the type of violence;
- keywords: a term of the indicator's lexicons for the observation's language (every language when the
  observation has none, or one the indicator has no lexicon for) occurs in its title or text, on word
  boundaries, case and accents folded.

Each reason says exactly why: "cameo:202 Engage in mass killings", "goldstein -10 <= -9",
"ucdp violence type 3 with 12 deaths", "keyword 'déplacés' (fr)" (the words as written in the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from tocsin.pipelines.indicators.catalogue import Catalogue, Indicator, Term
from tocsin.pipelines.indicators.folding import fold_with_offsets


class Match(NamedTuple):
    indicator_id: str
    weight: float
    reasons: list[str]
    deaths: str = "all"  # which deaths the indicator counts (catalogue `deaths`)


def _original(text: str, offsets: list[int] | None, start: int, end: int) -> str:
    if offsets is not None:
        start, end = offsets[start], offsets[end - 1] + 1
    return " ".join(text[start:end].split())


# ---------------------------------------------------------------------------------------------- compiling


def _term_regex(term: str) -> str:
    words = term.replace("-", " ").split()
    parts = [re.escape(w[:-1]) + r"\w*" if w.endswith("*") else re.escape(w) for w in words]
    return r"[\s\-]+".join(parts)


@dataclass(frozen=True, slots=True)
class LanguageMatcher:
    regex: re.Pattern
    groups: tuple[tuple[str, str], ...]  # (group name, reason template)
    unless: re.Pattern | None = None  # a text holding one of these terms does not match


def _alternation(terms) -> str:
    """Folded terms as one alternation, longest first (so a phrase wins over its first word)."""
    return "|".join(_term_regex(t) for t in sorted(terms, key=lambda t: (-len(t), t)))


def _on_word_boundaries(body: str) -> re.Pattern:
    return re.compile(r"(?<!\w)(?:" + body + r")(?!\w)")


def terms_regex(terms) -> re.Pattern:
    """One regex for folded terms, on word boundaries (`*` ends a stem)."""
    return _on_word_boundaries(_alternation(terms))


@dataclass(frozen=True, slots=True)
class IndicatorMatcher:
    id: str
    weight: float
    cameo: tuple[dict[str, str], ...]  # record code -> description; event, base, root
    goldstein_max: float | None
    violence_types: frozenset[int]
    min_deaths: int | None
    languages: dict[str, LanguageMatcher]
    min_civilian_deaths: int | None = None
    deaths: str = "all"
    source_types: frozenset[str] | None = None  # None: every kind of source
    every_report: bool = False


def _language_matcher(
    language: str, terms: tuple[Term, ...], patterns: list[str], unless: tuple[str, ...] = ()
) -> LanguageMatcher | None:
    alternatives: list[str] = []
    groups: list[tuple[str, str]] = []
    by_origin: dict[str | None, list[str]] = {}
    for term in terms:
        by_origin.setdefault(term.origin, []).append(term.text)
    for number, (origin, texts) in enumerate(by_origin.items()):
        alternatives.append(f"(?P<t{number}>{_alternation(texts)})")
        label = f"({language})" if origin is None else f"({language}, {origin})"
        groups.append((f"t{number}", "keyword '{span}' " + label))
    for number, pattern in enumerate(patterns):
        alternatives.append(f"(?P<p{number}>{pattern})")
        groups.append((f"p{number}", f"pattern {pattern!r} matched '{{span}}' ({language})"))
    if not alternatives:
        return None
    regex = _on_word_boundaries("|".join(alternatives))
    return LanguageMatcher(regex, tuple(groups), terms_regex(unless) if unless else None)


def compile_indicator(
    indicator: Indicator, terms: dict[str, tuple[Term, ...]], unless: dict[str, tuple[str, ...]] | None = None
) -> IndicatorMatcher:
    rules = indicator.match
    cameo: tuple[dict[str, str], ...] = ()
    if rules.cameo is not None:
        cameo = (
            {f"cameo:{c}": d for c, d in rules.cameo.event.items()},
            {f"cameo-base:{c}": d for c, d in rules.cameo.base.items()},
            {f"cameo-root:{c}": d for c, d in rules.cameo.root.items()},
        )
        cameo = tuple(level for level in cameo if level)
    languages = {}
    for language, keywords in rules.keywords.items():
        matcher = _language_matcher(
            language, terms.get(language, ()), keywords.patterns, (unless or {}).get(language, ())
        )
        if matcher is not None:
            languages[language] = matcher
    return IndicatorMatcher(
        id=indicator.id,
        weight=indicator.weight,
        cameo=cameo,
        goldstein_max=rules.goldstein_max,
        violence_types=frozenset(rules.ucdp_violence_types),
        min_deaths=rules.min_deaths,
        languages=languages,
        min_civilian_deaths=rules.min_civilian_deaths,
        deaths=indicator.deaths,
        source_types=frozenset(indicator.source_types) if indicator.source_types else None,
        every_report=rules.every_report,
    )


def matchers(catalogue: Catalogue) -> tuple[IndicatorMatcher, ...]:
    """The compiled matchers of the enabled indicators, built once per catalogue."""
    if catalogue._matchers is None:
        catalogue._matchers = tuple(
            compile_indicator(i, catalogue.terms(i.id), catalogue.unless_terms(i.id))
            for i in catalogue.indicators
            if i.enabled
        )
    return catalogue._matchers


# ---------------------------------------------------------------------------------------------- matching


def cameo_codes(event_codes) -> set[str]:
    """The observation's CAMEO codes, with the base and root derived from each full event code."""
    codes = set()
    for code in event_codes or ():
        codes.add(code)
        if code.startswith("cameo:"):
            digits = code[6:]
            if len(digits) >= 3:
                codes.add(f"cameo-base:{digits[:3]}")
            if len(digits) >= 2:
                codes.add(f"cameo-root:{digits[:2]}")
    return codes


def _deaths(n: int) -> str:
    return f"{n} death" if n == 1 else f"{n} deaths"


class _Texts:
    """The observation's title and text, folded once and shared by every indicator."""

    __slots__ = ("fields",)

    def __init__(self, observation: dict):
        fields = []
        seen = set()
        for name in ("title", "text"):
            value = observation.get(name)
            if value and value not in seen:
                seen.add(value)
                folded, offsets = fold_with_offsets(value)
                fields.append((value, folded, offsets))
        self.fields = fields


def _keyword_reasons(matcher: LanguageMatcher, texts: _Texts) -> list[str]:
    """One reason per distinct term found (case and accent variants of a term count once)."""
    reasons: list[str] = []
    seen: set[str] = set()
    if matcher.unless is not None and any(matcher.unless.search(f) for _, f, _ in texts.fields):
        return []
    for original, folded, offsets in texts.fields:
        for found in matcher.regex.finditer(folded):
            for name, template in matcher.groups:
                if found.group(name) is not None:
                    key = " ".join(found.group(name).split())
                    if key not in seen:
                        seen.add(key)
                        span = _original(original, offsets, *found.span(name))
                        reasons.append(template.format(span=span))
                    break
    return reasons


def classify(catalogue: Catalogue, observation: dict) -> list[Match]:
    compiled = matchers(catalogue)
    codes = cameo_codes(observation.get("event_codes"))
    goldstein = observation.get("goldstein")
    violence = observation.get("violence_type")
    deaths = observation.get("fatalities") or 0
    civilians = observation.get("civilian_fatalities") or 0
    language = (observation.get("language") or "").lower()[:2] or None
    texts = _Texts(observation) if (observation.get("title") or observation.get("text")) else None
    source_type = observation.get("source_type") or "OTHER"
    out: list[Match] = []
    for m in compiled:
        if m.source_types is not None and source_type not in m.source_types:
            continue
        reasons: list[str] = ["a report (every report counts)"] if m.every_report else []
        if codes and m.cameo:
            hit = level = None
            for level in m.cameo:  # the most specific level first: event, base, root
                hit = next((c for c in level if c in codes), None)
                if hit is not None:
                    break
            if hit is not None:
                if m.goldstein_max is None:
                    reasons.append(f"{hit} {level[hit]}")
                elif goldstein is not None and goldstein <= m.goldstein_max:
                    reasons.append(f"{hit} {level[hit]}")
                    reasons.append(f"goldstein {goldstein:g} <= {m.goldstein_max:g}")
        if violence is not None and violence in m.violence_types:
            if m.min_deaths is None or deaths >= m.min_deaths:
                reasons.append(f"ucdp violence type {violence} with {_deaths(deaths)}")
        if m.min_civilian_deaths is not None and civilians >= m.min_civilian_deaths:
            reasons.append(f"{civilians} civilians killed (at least {m.min_civilian_deaths})")
        if texts is not None and m.languages:
            # A language the indicator has no lexicon for is most often a short headline misread by
            # language detection ("la", "es" for English titles): every lexicon is tried, as for none.
            if language is None or language not in m.languages:
                chosen = list(m.languages.values())
            else:
                chosen = [m.languages[language]]
            for lang_matcher in chosen:
                reasons.extend(_keyword_reasons(lang_matcher, texts))
        if reasons:
            out.append(Match(m.id, m.weight, list(dict.fromkeys(reasons)), m.deaths))
    return out
