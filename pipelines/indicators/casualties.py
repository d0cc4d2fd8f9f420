"""Deaths reported in words: "Fighting kills 37 in Jonglei", "37 morts à Bangui", "death toll rises to 120".

`read_deaths(text)` returns the largest number of people a text says were killed (0 when it says none)
and the phrase it read it from. Headlines are most of what exists before an onset, and their casualty
numbers are the only count of deaths news gives; the classifier's keyword matchers say *what* happened,
this says *how many*.

Numbers: digits (with thousands separators: "1,200", "1 200"), number words up to twenty in English and
French ("three", "trois"), and vague quantities read conservatively, at the low end of what they mean:
dozens -> 24, scores -> 40, hundreds -> 200, thousands -> 2,000 (French: dizaines -> 20, centaines -> 200,
milliers -> 2,000). A number must be tied to a death word in one of a few fixed shapes, so "3 million
displaced", "10 years after" or "Resolution 2046" are not deaths; injuries ("37 wounded") are not deaths
either. Deaths from disease, hunger, disasters or accidents (the `natural_causes` lexicons) are not read,
nor totals over a period ("since January", "in 2003", "depuis"). Text is matched folded (case and
accents), as the classifier folds it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from tocsin.pipelines.indicators.catalogue import read_lexicon
from tocsin.pipelines.indicators.classify import terms_regex
from tocsin.pipelines.indicators.folding import fold

WORDS = {
    # English
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "a dozen": 12, "dozens": 24,
    "dozens of": 24, "scores": 40, "scores of": 40, "hundreds": 200, "hundreds of": 200,
    "thousands": 2000, "thousands of": 2000,
    # French (folded: no accents)
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15, "seize": 16,
    "vingt": 20, "une dizaine de": 10, "des dizaines de": 20, "une centaine de": 100,
    "des centaines de": 200, "des milliers de": 2000,
}  # fmt: skip
# "six" is French too; "neuf" and "sept" only count in the French shapes below, like every word.

_NUMBER = (
    r"(?P<n>\d{1,3}(?:[,. ]\d{3})+|\d+|"
    + "|".join(re.escape(w) for w in sorted(WORDS, key=len, reverse=True))
    + r")"
)
_WHO_EN = r"(?:(?:more than|over|at least|nearly|almost|about|some|around|up to)\s+)?"
_PEOPLE_EN = (
    r"(?:\s+(?:people|persons|civilians|villagers|residents|children|women|men|soldiers|troops|"
    r"fighters|rebels|militants|policemen|police officers|peacekeepers|aid workers|refugees|"
    r"students|worshippers|protesters|demonstrators|miners|farmers|herders|others))?"
)
_PEOPLE_FR = (
    r"(?:\s+(?:personnes|civils|villageois|habitants|enfants|femmes|hommes|soldats|militaires|"
    r"combattants|rebelles|casques? bleus?|refugies|manifestants|eleves|fideles))?"
)
_KILLED_EN = (
    r"(?:\s+(?:are|were|have been|had been|reported|feared|believed|confirmed))?\s+"
    r"(?:killed|dead|die|died|massacred|slain|murdered|executed|slaughtered|shot dead|lose their lives|"
    r"lost their lives|perish|perished|deaths)"
)
_KILLED_FR = (
    r"(?:\s+(?:ont ete|sont|auraient ete|seraient))?\s+"
    r"(?:morts?|mortes?|tues?|tuees?|massacres?|massacrees?|assassines?|assassinees?|executes?|"
    r"executees?|decedes?|decedees?|ont peri|a peri)"
)
SHAPES = [
    # "37 killed", "at least 37 people were killed", "dozens of civilians massacred", "37 deaths"
    re.compile(rf"(?<!\w){_WHO_EN}{_NUMBER}{_PEOPLE_EN}{_KILLED_EN}(?!\w)"),
    # "kills 37", "killed 37 civilians", "killing at least 37" (not "killed 3 years ago")
    re.compile(
        rf"(?<!\w)(?:kill|kills|killed|killing|massacre|massacres|massacred|slay|slays|slew)\s+{_WHO_EN}"
        rf"{_NUMBER}(?!\w)(?!\s*(?:years|months|weeks|days|hours|km|kilometres|miles|%|percent|million))"
    ),
    # "claims 37 lives"
    re.compile(rf"(?<!\w)(?:claims|claimed|claiming|costs|cost)\s+{_WHO_EN}{_NUMBER}\s+lives(?!\w)"),
    # "death toll rises to 120", "toll climbs to 37", "death toll of 37"
    re.compile(
        rf"(?<!\w)(?:death\s+)?toll\s+(?:(?:rises|climbs|reaches|jumps|mounts|hits|stands)\s+(?:to|at)\s+|"
        rf"(?:of|at)\s+){_WHO_EN}{_NUMBER}(?!\w)"
    ),
    # "37 morts", "au moins 37 personnes tuees", "des dizaines de civils massacres"
    re.compile(
        rf"(?<!\w)(?:(?:au moins|plus de|pres de|environ)\s+)?{_NUMBER}{_PEOPLE_FR}{_KILLED_FR}(?!\w)"
    ),
    # "tue 37 personnes" ("fait 37 morts" and "bilan de 37 morts" are the shape above)
    re.compile(
        rf"(?<!\w)(?:tue|tuent|massacre|massacrent)\s+(?:(?:au moins|plus de)\s+)?{_NUMBER}"
        rf"{_PEOPLE_FR}(?!\w)"
    ),
]
MAX_DEATHS = 1_000_000  # a number beyond this in a headline is not a count of the dead
# A total over months or years ("800 killed since 2003", "so far this year") is not the deaths of a window.
CUMULATIVE = re.compile(
    r"(?<!\w)(?:since|so far|this year|last year|in (?:19|20)\d\d|over the (?:past|last)|in total|"
    r"depuis|cette annee|l'an dernier|au total|en (?:19|20)\d\d)(?!\w)"
)


@lru_cache(maxsize=1)
def _not_violence() -> re.Pattern:
    """Disease, hunger, disasters, accidents: the packaged `natural_causes` lexicons (one home for them,
    shared with the killing indicator's `unless`)."""

    folder = Path(__file__).parent / "lexicons"
    terms: list[str] = []
    for file in sorted(folder.glob("natural_causes.*.txt")):
        terms += read_lexicon(file.read_text(encoding="utf-8"), file.name)[0]
    return terms_regex(terms)


def _value(token: str) -> int | None:
    token = token.strip()
    if token in WORDS:
        return WORDS[token]
    digits = re.sub(r"[,. ]", "", token)
    if not digits.isdigit():
        return None
    value = int(digits)
    return value if 0 < value <= MAX_DEATHS else None


def read_deaths(*texts: str | None) -> tuple[int, str | None]:
    """(largest number of deaths stated, the phrase it was read from) over the texts; (0, None) if none."""
    best, phrase = 0, None
    for text in texts:
        if not text:
            continue
        folded = " ".join(fold(text).split())
        if _not_violence().search(folded) or CUMULATIVE.search(folded):
            continue
        for shape in SHAPES:
            for found in shape.finditer(folded):
                value = _value(found.group("n"))
                if value is not None and value > best:
                    best, phrase = value, found.group(0).strip()
    return best, phrase
