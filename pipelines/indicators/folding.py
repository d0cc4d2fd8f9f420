"""Folding text for matching: case, accents and typographic apostrophes, as the catalogue's terms are
folded when loaded and observations' texts when classified (one function for both, so they agree)."""

from __future__ import annotations

import unicodedata
from functools import lru_cache

APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'"})


def fold(text: str) -> str:
    """Casefold, strip accents (NFKD, combining marks dropped) and make typographic apostrophes ASCII."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(APOSTROPHES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return fold(char)


def fold_with_offsets(text: str) -> tuple[str, list[int] | None]:
    """The folded text and, for non-ASCII text, the index in `text` of each folded character."""
    if text.isascii():
        return text.lower(), None
    out: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        folded = char.lower() if char.isascii() else _fold_char(char)
        out.append(folded)
        offsets.extend([index] * len(folded))
    return "".join(out), offsets
