"""RSS/Atom feeds -> NewsItem records.

`parse_feed` is pure: feed bytes -> (position, NewsItem or Reject). feedparser does the format work; the
raw XML is read again only for what feedparser flattens, EMM's repeated `emm:entity`/`emm:georss`
elements (it keeps the last one only). The feed connector (connectors/rss.py) polls feeds with it; the
batch readers (files.py) read saved feeds with it.
"""

from __future__ import annotations

import calendar
import json
import re
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import feedparser
import pycountry

from tocsin.formats.countries import iso3_from_name
from tocsin.formats.records import Reject
from tocsin.formats.text import detect_language, digest, html_to_text, normalise_language
from tocsin.timestamps import now_ms

EMM_NS = "http://emm.jrc.it"
ATOM_NS = "http://www.w3.org/2005/Atom"
# ReliefWeb puts the countries of a report in its description: "Country: Ukraine" / "Countries: A, B".
RELIEFWEB_COUNTRY = re.compile(r"^Countr(?:y|ies):\s*(.+)$", re.MULTILINE)


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
        # feedparser copies an RSS pubDate into `updated` (and dc:date often repeats it): keep a distinct
        # time. dict.get reads the entry's own key, past feedparser's deprecated updated->published fallback.
        "updated": dict.get(entry, "updated")
        if dict.get(entry, "updated_parsed") != dict.get(entry, "published_parsed")
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
    parsed = feedparser.parse(content)
    if parsed.get("version") or parsed.entries:
        return True, ""
    return False, str(parsed.get("bozo_exception") or "no RSS or Atom root element")
