"""ReliefWeb API (v1/v2 `/reports`) JSON -> NewsItem records, page by page.

`parse_page` is pure: one API response -> (items, URL of the next page or None). The ReliefWeb connector
(connectors/reliefweb.py) follows the pages of the API with it; the batch readers (files.py) read a saved
response with it.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

from tocsin.formats.records import Reject
from tocsin.formats.text import detect_language, html_to_text
from tocsin.timestamps import epoch_ms, now_ms

SOURCE = "reliefweb"
# Report fields kept verbatim in attributes (when the query asked for them).
KEPT = ("origin", "status", "headline")


def _date(value) -> int | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return epoch_ms(dt.datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def _names(values, key: str = "name") -> list[str]:
    out: dict[str, None] = {}
    for value in values if isinstance(values, list) else [values] if values else []:
        name = value.get(key) if isinstance(value, dict) else None
        if isinstance(name, str) and name.strip():
            out.setdefault(name.strip(), None)
    return list(out)


def _iso3(value) -> str | None:
    code = value.get("iso3") if isinstance(value, dict) else None
    return code.strip().upper() if isinstance(code, str) and len(code.strip()) == 3 else None


def _country(fields: dict) -> str | None:
    """The primary country, else the country flagged primary, else the only one."""
    primary = _iso3(fields.get("primary_country"))
    if primary:
        return primary
    countries = fields.get("country") if isinstance(fields.get("country"), list) else []
    flagged = [c for c in countries if isinstance(c, dict) and c.get("primary")]
    if flagged:
        return _iso3(flagged[0])
    return _iso3(countries[0]) if len(countries) == 1 else None


def parse_report(report: dict, feed_url: str | None = None, ingested_at: int | None = None) -> dict | Reject:
    ingested_at = ingested_at or now_ms()
    fields = report.get("fields") if isinstance(report.get("fields"), dict) else {}
    report_id = str(report.get("id") or fields.get("id") or "").strip()
    title = " ".join(str(fields.get("title") or "").split())
    errors = [
        m
        for m, bad in (
            ("id: required value missing", not report_id),
            ("fields.title: required value missing", not title),
        )
        if bad
    ]
    if errors:
        return Reject("parse-error", errors, json.dumps(report, sort_keys=True))
    date = fields.get("date") if isinstance(fields.get("date"), dict) else {}
    published = _date(date.get("original")) or _date(date.get("created"))
    summary = html_to_text(fields.get("body-html")) or html_to_text(fields.get("body"))
    language = next(
        (
            lang.get("code")
            for lang in fields.get("language") or []
            if isinstance(lang, dict) and isinstance(lang.get("code"), str)
        ),
        None,
    )
    url = fields.get("url_alias") or fields.get("url") or f"https://reliefweb.int/node/{report_id}"
    attributes = {k: str(fields[k]) for k in KEPT if isinstance(fields.get(k), str) and fields[k].strip()}
    if report.get("href"):
        attributes["api_href"] = report["href"]
    countries = [c for c in (_iso3(c) for c in fields.get("country") or []) if c]
    if countries:
        attributes["countries"] = ",".join(countries)
    shortnames = _names(fields.get("source"), "shortname")
    if shortnames:
        attributes["source_shortnames"] = ",".join(shortnames)
    files = [f["url"] for f in fields.get("file") or [] if isinstance(f, dict) and f.get("url")]
    if files:
        attributes["files"] = " ".join(files)
    return {
        "id": f"{SOURCE}:{report_id}",
        "source": SOURCE,
        "feed_url": feed_url,
        "guid": report_id,
        "link": url,
        "title": title,
        "summary": summary,
        "published": published,
        "event_time": published or _date(date.get("changed")) or ingested_at,
        "ingested_at": ingested_at,
        "language": (language or "").lower()[:2] or detect_language(" ".join(filter(None, (title, summary)))),
        "authors": _names(fields.get("source")),
        "categories": _names(fields.get("theme"))
        + _names(fields.get("disaster_type"))
        + _names(fields.get("format")),
        "entities": [],
        "country": _country(fields),
        "latitude": None,
        "longitude": None,
        "attributes": attributes,
    }


def _offset(url: str) -> int | None:
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("offset")
    return int(values[0]) if values and values[0].isdigit() else None


def parse_page(
    doc: dict, feed_url: str | None = None, ingested_at: int | None = None
) -> tuple[list[tuple[int, dict | Reject]], str | None]:
    """(position, NewsItem or Reject) for every report of one API response, and the next page's URL.

    There is no next page when this one is empty or the next offset is past `totalCount` (the API still
    sends a `next` link then).
    """
    ingested_at = ingested_at or now_ms()
    feed_url = feed_url or doc.get("href")  # the query that produced a saved page
    data = doc.get("data") if isinstance(doc.get("data"), list) else []
    items: list[tuple[int, dict | Reject]] = []
    for position, report in enumerate(data, start=1):
        item = (
            parse_report(report, feed_url, ingested_at)
            if isinstance(report, dict)
            else Reject("parse-error", ["data item is not an object"], json.dumps(report))
        )
        if isinstance(item, Reject):
            item.position = position
            item.errors = [f"data[{position - 1}]: {e}" for e in item.errors]
        items.append((position, item))
    following = ((doc.get("links") or {}).get("next") or {}).get("href")
    total = doc.get("totalCount")
    offset = _offset(following) if following else None
    if not data or not following or (isinstance(total, int) and offset is not None and offset >= total):
        following = None
    return items, following
