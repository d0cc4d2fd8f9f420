"""RSS/Atom feeds -> NewsItem records on Kafka: a poller that reads each item once.

`poll_feed` fetches with a conditional GET (ETag / Last-Modified) and drops items it has already
produced, by a bounded list of item digests kept in the cursor. The cursor is committed in the same
Kafka transaction as the items, so a restart neither loses nor repeats an item. The feed is parsed by
tocsin.formats.feeds.
"""

from __future__ import annotations

import time
import urllib.error
import zlib

import structlog

from tocsin.connectors.base import BYTES, POLL_ERRORS, Batch, ConnectorSink
from tocsin.formats.feeds import is_feed, parse_feed
from tocsin.formats.records import Reject
from tocsin.formats.text import digest, feed_id_for
from tocsin.kafka import topics
from tocsin.web.fetch import TIMEOUT, fetch

log = structlog.get_logger("tocsin.connectors.rss")

CONNECTOR = "rss"
SEEN_LIMIT = 2000  # item digests kept per feed: far more than any feed lists at once


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
    fresh = list(dict.fromkeys(current))
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
    topic: str = topics.NEWS,
    state_topic: str = topics.CONNECTOR_STATE,
    dead_letter_topic: str = topics.DEAD_LETTERS,
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
