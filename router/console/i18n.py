"""The console's languages: English (the source strings) and French, from gettext catalogues.

The catalogues are .po files beside this module (`locales/<lang>/LC_MESSAGES/console.po`), read and
compiled in memory at start (Babel), so a translator edits one text file and no build step is needed.
A user's language is what they chose, else what their browser asks for, else English.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = Path(__file__).with_name("locales")
LANGUAGES = ("en", "fr")
DEFAULT = "en"


@cache
def translations(language: str) -> NullTranslations:
    """The gettext translations of a language (English: the strings as written)."""
    if language == DEFAULT:
        return NullTranslations()
    with (LOCALES / language / "LC_MESSAGES" / "console.po").open("rb") as po:
        catalog = read_po(po, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled)


def negotiate(chosen: str | None, accept_language: str | None) -> str:
    """The language to answer in: the user's choice, else the first of Accept-Language we have."""
    if chosen in LANGUAGES:
        return chosen
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT
