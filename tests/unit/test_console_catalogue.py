"""The console's French catalogue covers every string of its templates, and the values shown through
gettext (statuses, severities, answers): a page is never half in English."""

from __future__ import annotations

from pathlib import Path

from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from tocsin.router.console import pages, story
from tocsin.router.console.i18n import LOCALES, negotiate, translations
from tocsin.router.ledger import chain

TEMPLATES = Path(pages.__file__).with_name("templates")
SHOWN_THROUGH_GETTEXT = [
    *pages.STATUSES,
    *pages.SEVERITIES,
    *pages.STORY_KINDS,
    *(a.upper() for a in pages.ANSWERS),
]


def template_messages() -> set[str]:
    found = set()
    for template in TEMPLATES.glob("*.html"):
        with template.open("rb") as source:
            for _, _, message, _ in babel_extract(source, ["_", "ngettext"], [], {}):
                singular = message if isinstance(message, str) else (message or (None,))[0]
                if singular:
                    found.add(singular)
    return found


def test_every_message_has_a_french_translation():
    with (LOCALES / "fr" / "LC_MESSAGES" / "console.po").open("rb") as po:
        catalog = read_po(po, locale="fr")
    translated = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id and m.string}
    in_code = {"%(name)s at each event of this alert", "Threshold", "This window"}  # pages._plot
    in_code |= {*story.MESSAGES, *story.VALUES}
    wanted = template_messages() | set(SHOWN_THROUGH_GETTEXT) | in_code
    assert len(wanted) > 60
    assert sorted(wanted - translated) == []


def test_french_is_read_from_the_catalogue_and_english_is_the_source():
    assert translations("fr").gettext("Sign in") == "Se connecter"
    one = "%(num)s alert waits for your answer; it has waited %(time)s."
    many = "%(num)s alerts wait for your answer; the longest has waited %(time)s."
    assert translations("fr").ngettext(one, many, 1) == "%(num)s alerte attend votre réponse depuis %(time)s."
    assert translations("en").gettext("Sign in") == "Sign in"


def test_the_language_is_the_users_choice_else_the_browsers_else_english():
    assert negotiate("fr", "en-GB,en;q=0.9") == "fr"
    assert negotiate(None, "fr-FR,fr;q=0.9,en;q=0.8") == "fr"
    assert negotiate(None, "de-DE,es;q=0.5") == "en"
    assert negotiate("xx", None) == "en"


def test_the_ledger_story_is_told_in_french():
    sent = {"receiver": "igad-room", "channel": "email", "attempt": 2, "status": "DELIVERED"}
    entry = chain(None, 0, "notification", "a1", "router", sent)
    assert story.story_line(entry, translations("fr").gettext) == "igad-room par email, tentative 2 : REMISE"
    assert story.story_line(entry, translations("en").gettext) == "igad-room by email, attempt 2: DELIVERED"
    answer = chain(
        entry, 1, "response", "a1", "igad/amina", {"kind": "DECLINED", "reason": "outside mandate"}
    )
    assert story.story_line(answer, translations("fr").gettext) == "REFUSÉE : outside mandate"
