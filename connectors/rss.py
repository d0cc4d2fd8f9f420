"""RSS/Atom feeds -> NewsItem records, and a poller that reads each item once.

`parse_feed` is pure: feed bytes -> (position, NewsItem or Reject). feedparser does the format work; the
raw XML is read again only for what feedparser flattens, EMM's repeated `emm:entity`/`emm:georss`
elements (it keeps the last one only).

`poll_feed` fetches with a conditional GET (ETag / Last-Modified) and drops items it has already
produced, by a bounded list of item digests kept in the cursor. The cursor is committed in the same
Kafka transaction as the items, so a restart neither loses nor repeats an item.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from html.parser import HTMLParser

import structlog

from tocsin.connectors.base import (
    BYTES,
    DEAD_LETTER_TOPIC,
    POLL_ERRORS,
    STATE_TOPIC,
    Batch,
    ConnectorSink,
    Reject,
    now_ms,
)
from tocsin.connectors.countries import iso3_from_name

log = structlog.get_logger("tocsin.connectors.rss")

CONNECTOR = "rss"
NEWS_TOPIC = "tocsin.news.raw.v1"
EMM_NS = "http://emm.jrc.it"
ATOM_NS = "http://www.w3.org/2005/Atom"
SEEN_LIMIT = 2000  # item digests kept per feed: far more than any feed lists at once
TIMEOUT = 30.0
MAX_BYTES = 32 * 1024 * 1024
USER_AGENT = "tocsin-feed-reader/0.1"
# ReliefWeb puts the countries of a report in its description: "Country: Ukraine" / "Countries: A, B".
RELIEFWEB_COUNTRY = re.compile(r"^Countr(?:y|ies):\s*(.+)$", re.MULTILINE)


# --- text helpers (also used by the ReliefWeb connector) -------------------------------------------------


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
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier
        except ImportError:
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


# --- parsing ----------------------------------------------------------------------------------------------


def _ms(parsed: time.struct_time | None) -> int | None:
    # feedparser gives every date as a UTC struct_time.
    return calendar.timegm(parsed) * 1000 if parsed else None


def _unique(values) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        value = (value or "").strip()
        if value:
            seen.setdefault(value, None)
    return list(seen)


def _iso3_from_alpha2(code: str | None) -> str | None:
    import pycountry

    country = pycountry.countries.get(alpha_2=code.strip().upper()) if code and code.strip() else None
    return country.alpha_3 if country else None


@dataclass
class _EmmTags:
    entities: list[dict]
    country: str | None
    point: tuple[float, float] | None
    source_country: str | None  # where the publisher is, not what the item is about


def _emm_tags(content: bytes) -> dict[str, _EmmTags]:
    """EMM entities and places per item, keyed by the item's guid (else link), from the raw XML."""
    try:
        root = ET.fromstring(content)
    except ET.ParseError:
        return {}  # feedparser's loose parse still gives the last entity of each item
    tags: dict[str, _EmmTags] = {}
    items = list(root.iter("item")) + list(root.iter(f"{{{ATOM_NS}}}entry"))
    for item in items:
        key = (
            item.findtext("guid") or item.findtext(f"{{{ATOM_NS}}}id") or item.findtext("link") or ""
        ).strip()
        entities: dict[tuple, dict] = {}
        for el in item.iter(f"{{{EMM_NS}}}entity"):
            name = (el.get("name") or el.text or "").strip()
            if name:
                # EMM lists each entity twice (with and without the matched text): one per (id, name).
                entities.setdefault(
                    (el.get("id"), name), {"name": name, "type": el.get("type"), "id": el.get("id")}
                )
        country, point = None, None
        for el in item.iter(f"{{{EMM_NS}}}georss"):
            country = country or _iso3_from_alpha2(el.get("iso"))
            if point is None and el.get("lat") and el.get("lon"):
                try:
                    point = (float(el.get("lat")), float(el.get("lon")))
                except ValueError:
                    pass
        source = item.find("source")
        if key:
            tags[key] = _EmmTags(
                list(entities.values()), country, point, source.get("country") if source is not None else None
            )
    return tags


def _summary(entry) -> str | None:
    detail = entry.get("summary_detail") or (entry.get("content") or [None])[0]
    if not detail or not detail.get("value"):
        return None
    if detail.get("type") == "text/plain":
        return " ".join(detail["value"].split()) or None
    return html_to_text(detail["value"])


def _point(entry) -> tuple[float | None, float | None]:
    where = entry.get("where") or {}
    if where.get("type") == "Point" and len(where.get("coordinates") or ()) == 2:
        lon, lat = where["coordinates"]  # GeoJSON order
        return float(lat), float(lon)
    try:
        if entry.get("geo_lat") and entry.get("geo_long"):  # W3C Basic Geo
            return float(entry["geo_lat"]), float(entry["geo_long"])
    except ValueError:
        pass
    return None, None


def _attributes(entry, feed) -> dict[str, str]:
    source = entry.get("source") or {}
    enclosure = next(
        (link.get("href") for link in entry.get("links", []) if link.get("rel") == "enclosure"), None
    )
    found = {
        "feed_title": feed.get("title"),
        "source_title": source.get("title"),
        "source_url": source.get("href"),
        "keywords": entry.get("emm_keywords"),
        # feedparser copies an RSS pubDate into `updated` (and dc:date often repeats it): keep a distinct time
        "updated": entry.get("updated")
        if entry.get("updated_parsed") != entry.get("published_parsed")
        else None,
        "enclosure": enclosure,
    }
    return {k: v.strip() for k, v in found.items() if isinstance(v, str) and v.strip()}


def parse_entry(
    entry, feed, feed_id: str, feed_url: str | None, ingested_at: int, emm: _EmmTags | None = None
) -> dict | Reject:
    title = " ".join((entry.get("title") or "").split())
    link = (entry.get("link") or "").strip() or None
    guid = (entry.get("id") or "").strip() or None
    if not title and not link:
        return Reject("parse-error", ["no title and no link"], json.dumps(entry, default=str, sort_keys=True))
    summary = _summary(entry)
    published = _ms(entry.get("published_parsed")) or _ms(entry.get("updated_parsed"))
    language = (
        normalise_language(entry.get("iso_language"))
        or normalise_language((entry.get("title_detail") or {}).get("language"))
        or normalise_language((entry.get("summary_detail") or {}).get("language"))
        or normalise_language(feed.get("language"))
        or detect_language(" ".join(filter(None, (title, summary))))
    )
    authors = _unique([a.get("name") for a in entry.get("authors", [])] or [entry.get("author")])
    latitude, longitude = _point(entry)
    countries = RELIEFWEB_COUNTRY.search(summary or "")
    country = iso3_from_name(countries.group(1).split(",")[0]) if countries else None
    attributes = _attributes(entry, feed)
    if countries:
        attributes["countries"] = countries.group(1).strip()
    entities: list[dict] = []
    if emm is not None:
        entities = emm.entities
        if emm.source_country:
            attributes["source_country"] = emm.source_country
        country = country or emm.country
        if latitude is None and emm.point:
            latitude, longitude = emm.point
    elif entry.get("emm_entity"):  # raw XML unreadable: feedparser's (last) entity is all there is
        one = entry["emm_entity"]
        if one.get("name"):
            entities = [{"name": one["name"], "type": one.get("type"), "id": one.get("id")}]
    return {
        "id": f"{feed_id}:{digest(guid or link or title + str(published))}",
        "source": feed_id,
        "feed_url": feed_url,
        "guid": guid,
        "link": link,
        "title": title or (summary or "")[:200] or link,
        "summary": summary,
        "published": published,
        "event_time": published or ingested_at,
        "ingested_at": ingested_at,
        "language": language,
        "authors": authors,
        "categories": _unique(tag.get("term") for tag in entry.get("tags", [])),
        "entities": entities,
        "country": country,
        "latitude": latitude,
        "longitude": longitude,
        "attributes": attributes,
    }


def parse_feed(
    content: bytes, feed_id: str, feed_url: str | None, ingested_at: int | None = None
) -> list[tuple[int, dict | Reject]]:
    """(1-based item position, NewsItem or Reject) for every item or entry of an RSS/Atom document."""
    import feedparser

    ingested_at = ingested_at or now_ms()
    headers = {"content-location": feed_url} if feed_url else {}
    parsed = feedparser.parse(content, response_headers=headers)
    emm = _emm_tags(content) if EMM_NS in parsed.get("namespaces", {}).values() else {}
    out: list[tuple[int, dict | Reject]] = []
    for position, entry in enumerate(parsed.entries, start=1):
        key = (entry.get("id") or entry.get("link") or "").strip()
        item = parse_entry(entry, parsed.feed, feed_id, feed_url, ingested_at, emm.get(key))
        if isinstance(item, Reject):
            item.position = position
            item.errors = [f"item {position}: {e}" for e in item.errors]
        out.append((position, item))
    return out


def is_feed(content: bytes) -> tuple[bool, str]:
    """Whether the bytes are an RSS/Atom document at all (an HTML error page is not)."""
    import feedparser

    parsed = feedparser.parse(content)
    if parsed.get("version") or parsed.entries:
        return True, ""
    return False, str(parsed.get("bozo_exception") or "no RSS or Atom root element")


# --- polling ----------------------------------------------------------------------------------------------


@dataclass
class Fetched:
    status: int  # 200, or 304 not modified
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None


def fetch(
    url: str, etag: str | None = None, last_modified: str | None = None, timeout: float = TIMEOUT
) -> Fetched:
    """GET with the stored validators; raises urllib.error.URLError / OSError on failure."""
    headers = {
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "gzip",
        "Accept": "application/rss+xml, application/atom+xml, application/xml;q=0.9, */*;q=0.8",
    }
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
            if response.headers.get("Content-Encoding", "").lower() == "gzip":
                # bounded, so a small compressed body cannot expand without limit
                body = zlib.decompressobj(wbits=31).decompress(body, MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise OSError(f"feed larger than {MAX_BYTES} bytes")
            return Fetched(
                response.status, body, response.headers.get("ETag"), response.headers.get("Last-Modified")
            )
    except urllib.error.HTTPError as exc:
        if exc.code == 304:
            return Fetched(304, etag=etag, last_modified=last_modified)
        raise


def poll_feed(
    url: str,
    sink: ConnectorSink,
    state: dict | None,
    *,
    timeout: float = TIMEOUT,
    ingested_at: int | None = None,
) -> tuple[dict, dict[str, int]]:
    """Fetch the feed once and commit its new items with the new cursor; returns (cursor, counts).

    A failed fetch counts in tocsin_connector_poll_errors_total and leaves the cursor as it was.
    """
    state = dict(state or {})
    counts = {"produced": 0, "dead_letter": 0, "duplicate": 0, "not_modified": 0, "errors": 0}
    flog = log.bind(url=url, instance=sink.instance)
    try:
        fetched = fetch(url, state.get("etag"), state.get("last_modified"), timeout)
    except (urllib.error.URLError, OSError, ValueError, zlib.error) as exc:  # HTTP status, timeout, refused
        POLL_ERRORS.labels(CONNECTOR).inc()
        counts["errors"] = 1
        flog.warning("feed poll failed", error=str(getattr(exc, "reason", None) or exc))
        return state, counts
    if fetched.status == 304:
        counts["not_modified"] = 1
        flog.debug("feed not modified")
        return state, counts
    BYTES.labels(CONNECTOR).inc(len(fetched.body))
    items = parse_feed(fetched.body, feed_id_for(url), url, ingested_at)
    ok, why = is_feed(fetched.body) if not items else (True, "")
    if not ok:  # an error page served with 200: retried next time, validators not kept
        POLL_ERRORS.labels(CONNECTOR).inc()
        counts["errors"] = 1
        flog.warning("not a feed", error=why)
        return state, counts

    seen = list(state.get("seen", []))
    known = set(seen)
    batch, current = Batch(), []
    for _, item in items:
        # Rejects are remembered too (by content: their position moves), so a broken item is
        # dead-lettered once, not on every change of the feed.
        key = "r" + digest(_text(item.raw)) if isinstance(item, Reject) else item["id"].rsplit(":", 1)[1]
        current.append(key)
        if key in known:
            counts["duplicate"] += 1
            continue
        known.add(key)  # a feed listing one item twice
        (batch.rejects if isinstance(item, Reject) else batch.records).append(item)
    # Oldest first, so event time mostly advances within the topic.
    batch.records.sort(key=lambda record: record["event_time"])
    # The feed's current items stay remembered whatever its length; older ones age out.
    fresh = _unique(current)
    listed = set(fresh)
    remembered = fresh + [key for key in seen if key not in listed]
    cursor = {
        "url": url,
        "etag": fetched.etag,
        "last_modified": fetched.last_modified,
        "seen": remembered[: max(SEEN_LIMIT, len(fresh))],
    }
    if len(batch) or cursor != state:
        produced, dead = sink.write_batch(batch, cursor, source=url)
        counts["produced"], counts["dead_letter"] = produced, dead
    flog.info("feed polled", **counts)
    return cursor, counts


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def run_feeds(
    urls: list[str],
    client: dict,
    interval: float = 300.0,
    once: bool = False,
    *,
    topic: str = NEWS_TOPIC,
    state_topic: str = STATE_TOPIC,
    dead_letter_topic: str = DEAD_LETTER_TOPIC,
    timeout: float = TIMEOUT,
) -> dict[str, dict[str, int]]:
    """Poll every feed every `interval` seconds (once with `once`), each with its own sink and cursor.

    Fetch failures are counted and logged and the loop goes on; a Kafka failure ends it, and a restart
    resumes from the committed cursors. Returns the counts per feed URL, summed over the polls.
    """
    sinks: dict[str, ConnectorSink] = {}
    states: dict[str, dict] = {}
    totals: dict[str, dict[str, int]] = {}
    try:
        for url in urls:
            sink = ConnectorSink(
                client,
                CONNECTOR,
                f"{CONNECTOR}/{feed_id_for(url)}",
                topic,
                "NewsItem",
                dead_letter_topic=dead_letter_topic,
                state_topic=state_topic,
            )
            sinks[url] = sink
            states[url] = sink.load_cursor() or {}
            totals[url] = {}
        while True:
            started = time.monotonic()
            for url in urls:
                states[url], counts = poll_feed(url, sinks[url], states[url], timeout=timeout)
                for name, value in counts.items():
                    totals[url][name] = totals[url].get(name, 0) + value
            if once:
                return totals
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        for sink in sinks.values():
            sink.close()
