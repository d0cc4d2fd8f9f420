"""Text helpers of the news parsers (RSS/Atom, the ReliefWeb API and its listings): plain text of HTML,
language codes and detection, and the stable ids and digests that make record ids.

Kept apart from any one format because every news format uses them, and the feed and ReliefWeb
connectors name their instances with `feed_id_for`.
"""

from __future__ import annotations

import hashlib
import re
import urllib.parse
from html.parser import HTMLParser

try:  # a dependency, but language detection is best effort: without py3langid it gives None
    from py3langid.langid import MODEL_FILE, LanguageIdentifier
except ImportError:
    LanguageIdentifier = None


class _TextExtractor(HTMLParser):
    """Collects the text of an HTML fragment; block elements become line breaks, scripts are skipped."""

    BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "tr",
        "table",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "pre",
        "hr",
        "dd",
        "dt",
    }
    SKIP = {"script", "style", "template"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCK:
            self.parts.append("\n")

    def handle_data(self, data):
        if not self._skipping:
            self.parts.append(data)


def html_to_text(markup: str | None) -> str | None:
    """Plain text of an HTML fragment: entities decoded, one line per block, whitespace collapsed."""
    if not markup:
        return None
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line) or None


def normalise_language(value: str | None) -> str | None:
    """'en-GB', 'en_us', 'EN' -> 'en'; anything that is not a two-letter code -> None."""
    code = re.split(r"[-_]", (value or "").strip())[0].lower()
    return code if len(code) == 2 and code.isalpha() else None


_identifier = None


def detect_language(text: str | None, min_chars: int = 20, min_probability: float = 0.3) -> str | None:
    """ISO 639-1 code of the text by py3langid, or None when unsure, too short, or py3langid is absent."""
    global _identifier
    if not text or len(text.strip()) < min_chars:
        return None
    if _identifier is None:
        if LanguageIdentifier is None:
            return None
        identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        # The model also knows languages without an ISO 639-1 code (pcm, zxx...), which often win on
        # short English headlines; the schema wants ISO 639-1 anyway.
        identifier.set_languages([code for code in identifier.labels if len(code) == 2])
        _identifier = identifier
    # Headlines are short, and py3langid tempers the confidence of short texts: a low bar still
    # keeps out text with no clear language.
    code, probability = _identifier.classify(text)
    return code if probability >= min_probability else None


def feed_id_for(url: str) -> str:
    """A stable id of a feed from its host, path and query, in [a-z0-9.-] (query kept: it selects the feed,
    e.g. ReliefWeb's ?legacy-river=country/ukr)."""
    parts = urllib.parse.urlsplit(url)
    raw = parts.netloc + parts.path + (f"?{parts.query}" if parts.query else "")
    safe = re.sub(r"[^a-z0-9.]+", "-", raw.lower()).strip("-.")
    if len(safe) > 80:  # keep transactional ids and keys short, still unique
        safe = f"{safe[:63]}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"
    return safe or hashlib.sha256(url.encode()).hexdigest()[:16]


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]
