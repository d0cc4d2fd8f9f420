"""ReliefWeb API (v1/v2 `/reports`) -> NewsItem records on Kafka, page by page.

`run_reliefweb` follows the `links.next` pages of the API, or reads one saved response from a file, and
commits each page's items (parsed by tocsin.formats.reliefweb) together with the cursor naming the next
page, so a restart resumes at the first page not committed.
"""

from __future__ import annotations

import json
import urllib.error
from pathlib import Path

import structlog

from tocsin.connectors.base import BYTES, POLL_ERRORS, Batch, ConnectorSink
from tocsin.formats.records import Reject
from tocsin.formats.reliefweb import SOURCE, parse_page
from tocsin.formats.text import feed_id_for
from tocsin.kafka import topics
from tocsin.web.fetch import TIMEOUT, fetch

log = structlog.get_logger("tocsin.connectors.reliefweb")

CONNECTOR = SOURCE


def _load(location: str, timeout: float) -> bytes:
    if "://" not in location:
        return Path(location).read_bytes()
    fetched = fetch(location, timeout=timeout)
    return fetched.body


def run_reliefweb(
    base_url_or_file: str,
    client: dict,
    *,
    max_pages: int | None = None,
    topic: str = topics.NEWS,
    state_topic: str = topics.CONNECTOR_STATE,
    dead_letter_topic: str = topics.DEAD_LETTERS,
    timeout: float = TIMEOUT,
) -> dict[str, int]:
    """Ingest every page from the API URL (following `links.next`), or the one page saved in a file.

    Each page is committed with the cursor {"source", "next", "pages"}; a restart continues at `next`
    (a file already read is not read again). A page that cannot be fetched ends the run with the error
    counted and logged; the next run retries it.
    """
    is_file = "://" not in base_url_or_file
    instance_id = Path(base_url_or_file).name if is_file else feed_id_for(base_url_or_file)
    sink = ConnectorSink(
        client,
        CONNECTOR,
        f"{CONNECTOR}/{instance_id}",
        topic,
        "NewsItem",
        dead_letter_topic=dead_letter_topic,
        state_topic=state_topic,
    )
    counts = {"produced": 0, "dead_letter": 0, "pages": 0, "errors": 0}
    rlog = log.bind(source=base_url_or_file, instance=sink.instance)
    try:
        cursor = sink.load_cursor() or {}
        if cursor and (is_file or not cursor.get("next")):
            rlog.info("already read", pages=cursor.get("pages"))
            return counts
        location = cursor.get("next") or base_url_or_file
        pages = cursor.get("pages", 0)
        while location and (max_pages is None or counts["pages"] < max_pages):
            try:
                raw = _load(location, timeout)
                doc = json.loads(raw)
                if not isinstance(doc, dict):
                    raise ValueError(f"expected a JSON object, got {type(doc).__name__}")
            except (urllib.error.URLError, OSError, ValueError) as exc:
                POLL_ERRORS.labels(CONNECTOR).inc()
                counts["errors"] += 1
                rlog.warning(
                    "page fetch failed", page=location, error=str(getattr(exc, "reason", None) or exc)
                )
                break
            BYTES.labels(CONNECTOR).inc(len(raw))
            items, following = parse_page(doc, None if is_file else location)
            batch = Batch()
            for _, item in items:
                (batch.rejects if isinstance(item, Reject) else batch.records).append(item)
            pages += 1
            # A saved file is one page; its `next` link points at the live API, not to be called.
            location = None if is_file else following
            produced, dead = sink.write_batch(
                batch, {"source": base_url_or_file, "next": location, "pages": pages}, source=base_url_or_file
            )
            counts["produced"] += produced
            counts["dead_letter"] += dead
            counts["pages"] += 1
            rlog.info("page committed", page=pages, produced=produced, dead_letter=dead)
    finally:
        sink.close()
    return counts
