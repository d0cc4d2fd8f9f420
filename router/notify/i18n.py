"""The languages notifications are written in: English (the source strings) and French, from gettext
catalogues.

A receiver's `language` chooses one. The catalogues are .po files beside this module
(`locales/<lang>/LC_MESSAGES/notify.po`), read and compiled in memory the first time a language is used
(Babel), so a translator edits one text file and no build step is needed. Only the text a person reads is
translated (subjects, bodies, the hints and command placeholders); labels, JSON keys, command names and
options stay as they are.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

LOCALES = Path(__file__).with_name("locales")
DOMAIN = "notify"
DEFAULT = "en"
LANGUAGES = (DEFAULT, "fr")  # router.config.Receiver.language accepts these


def catalogue_path(language: str) -> Path:
    return LOCALES / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> NullTranslations:
    """The gettext translations of a language (English: the strings as written in the code)."""
    if language == DEFAULT:
        return NullTranslations()
    with catalogue_path(language).open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)
