"""Feed connectors against the real broker: a local HTTP server serves the real RSS files with ETag and
Last-Modified; items are read once across conditional GETs, feed changes and restarts."""

from __future__ import annotations

import copy
import datetime as dt
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from tests import conftest
from tocsin.connectors.base import POLL_ERRORS, ConnectorSink
from tocsin.connectors.reliefweb import run_reliefweb
from tocsin.connectors.rss import poll_feed, run_feeds
from tocsin.formats.text import feed_id_for
from tocsin.serde.avro import decode, default_registry

pytestmark = pytest.mark.integration

NEWS = Path(conftest.DATA) / "news"
RSS = NEWS / "rss_atom"
# Every real feed, the Guardian's too: its content is copyrighted, so it is not committed.
SHARED_RSS = Path(conftest.SHARED) / "news" / "rss_atom"
RELIEFWEB_JSON = NEWS / "reliefweb_api_json" / "reliefweb_v1_reports_page1_2020-09.json"
EXTRA_ITEM = b"""<item>
  <title>Ukraine: a report added after the first poll</title>
  <link>https://reliefweb.int/report/ukraine/added-later</link>
  <guid isPermaLink="true">https://reliefweb.int/report/ukraine/added-later</guid>
  <pubDate>Thu, 17 Sep 2020 09:00:00 +0000</pubDate>
</item>
"""


class Served:
    """What the server answers on one path: body, ETag, Last-Modified (changeable between polls)."""

    def __init__(
        self,
        body: bytes,
        etag: str | None = '"v1"',
        last_modified: str | None = "Thu, 17 Sep 2020 07:30:00 GMT",
        content_type="application/rss+xml",
    ):
        self.body, self.etag, self.last_modified, self.content_type = body, etag, last_modified, content_type


class FeedServer:
    """stdlib HTTP server on 127.0.0.1:<free port> with conditional GET, recording the request headers."""

    def __init__(self):
        self.paths: dict[str, Served] = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                server.requests.append((self.path, dict(self.headers)))
                served = server.paths.get(self.path)
                if served is None:
                    self.send_error(404)
                    return
                if_none_match = self.headers.get("If-None-Match")
                if_modified = self.headers.get("If-Modified-Since")
                # RFC 9110: If-None-Match wins over If-Modified-Since when both are sent.
                fresh = (
                    (if_none_match == served.etag)
                    if if_none_match
                    else (if_modified is not None and if_modified == served.last_modified)
                )
                if fresh:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", served.content_type)
                self.send_header("Content-Length", str(len(served.body)))
                if served.etag:
                    self.send_header("ETag", served.etag)
                if served.last_modified:
                    self.send_header("Last-Modified", served.last_modified)
                self.end_headers()
                self.wfile.write(served.body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FeedServer()
    yield s
    s.close()


@pytest.fixture
def topics(make_topic):
    return {
        "topic": make_topic("news"),
        "state_topic": make_topic("state"),
        "dead_letter_topic": make_topic("deadletter"),
    }


def consume(bootstrap: str, topic: str, schema: str = "NewsItem") -> list[dict]:
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3000,
    )
    try:
        return [decode(message.value, default_registry().get(schema)) for message in consumer]
    finally:
        consumer.close()


def rss_sink(bootstrap: str, url: str, topics: dict) -> ConnectorSink:
    return ConnectorSink(
        {"bootstrap_servers": bootstrap},
        "rss",
        f"rss/{feed_id_for(url)}",
        topics["topic"],
        "NewsItem",
        dead_letter_topic=topics["dead_letter_topic"],
        state_topic=topics["state_topic"],
    )


def test_conditional_get_changed_feed_and_restart_read_each_item_once(bootstrap, topics, server):
    original = (RSS / "reliefweb_updates_ukraine_2020-09-17.rss.xml").read_bytes()
    served = server.paths["/ukr.xml"] = Served(original)
    url = server.url("/ukr.xml")
    sink = rss_sink(bootstrap, url, topics)
    assert sink.load_cursor() is None

    # (1) first poll: every item
    state, counts = poll_feed(url, sink, {})
    assert (counts["produced"], counts["dead_letter"]) == (5, 0)
    first = consume(bootstrap, topics["topic"])
    assert len(first) == 5 and {r["feed_url"] for r in first} == {url}
    assert "If-None-Match" not in server.requests[-1][1]
    assert (state["etag"], state["last_modified"]) == ('"v1"', "Thu, 17 Sep 2020 07:30:00 GMT")

    # (2) unchanged: the validators are sent, the server says 304, nothing is produced
    state, counts = poll_feed(url, sink, state)
    assert (counts["not_modified"], counts["produced"]) == (1, 0)
    headers = server.requests[-1][1]
    assert (headers["If-None-Match"], headers["If-Modified-Since"]) == (
        '"v1"',
        "Thu, 17 Sep 2020 07:30:00 GMT",
    )
    assert len(consume(bootstrap, topics["topic"])) == 5

    # (3) changed feed with one more item and a new ETag: only that item
    served.body = original.replace(b"<item>", EXTRA_ITEM + b"<item>", 1)
    served.etag, served.last_modified = '"v2"', "Thu, 17 Sep 2020 09:05:00 GMT"
    state, counts = poll_feed(url, sink, state)
    assert (counts["produced"], counts["duplicate"]) == (1, 5)
    after = consume(bootstrap, topics["topic"])
    assert len(after) == 6
    assert after[-1]["title"] == "Ukraine: a report added after the first poll"
    assert after[-1]["published"] == dt.datetime(2020, 9, 17, 9, 0, tzinfo=dt.UTC)
    assert len({r["id"] for r in after}) == 6
    sink.close()

    # (4) restart: a new sink loads the committed cursor, and nothing is produced again, neither on a
    # 304 nor when the server ignores the validators and sends the whole feed
    sink = rss_sink(bootstrap, url, topics)
    cursor = sink.load_cursor()
    assert cursor == state and cursor["etag"] == '"v2"' and len(cursor["seen"]) == 6
    _, counts = poll_feed(url, sink, cursor)
    assert (counts["not_modified"], counts["produced"]) == (1, 0)
    _, counts = poll_feed(url, sink, {k: v for k, v in cursor.items() if k not in ("etag", "last_modified")})
    assert (counts["produced"], counts["duplicate"]) == (0, 6)
    sink.close()
    assert [r["id"] for r in consume(bootstrap, topics["topic"])] == [r["id"] for r in after]
    assert consume(bootstrap, topics["dead_letter_topic"], "DeadLetter") == []


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


MALFORMED = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>t</title><language>en</language>
<item><title>First report of shelling near the border</title><link>https://example.org/a</link></item>
<item><description>An item with neither title nor link</description></item>
</channel></rss>"""


@conftest.needs_shared_data
def test_run_feeds_polls_every_feed_survives_http_errors_and_dead_letters_a_broken_item_once(
    bootstrap, topics, server
):
    for name in sorted(p.name for p in SHARED_RSS.iterdir()):
        server.paths[f"/{name}"] = Served((SHARED_RSS / name).read_bytes(), etag=f'"{name}"')
    server.paths["/malformed.xml"] = Served(MALFORMED, etag='"m1"', last_modified=None)
    server.paths["/error-page"] = Served(
        b"<html><body>Service unavailable</body></html>", content_type="text/html"
    )
    urls = [server.url(f"/{name}") for name in sorted(p.name for p in SHARED_RSS.iterdir())]
    broken = [
        server.url("/missing.xml"),
        server.url("/error-page"),
        f"http://127.0.0.1:{closed_port()}/feed.xml",
    ]
    errors_before = POLL_ERRORS.labels("rss")._value.get()

    totals = run_feeds(
        [*urls, server.url("/malformed.xml"), *broken],
        {"bootstrap_servers": bootstrap},
        interval=0,
        once=True,
        timeout=5,
        **topics,
    )
    assert [totals[u]["produced"] for u in urls] == [3, 55, 5]
    assert (
        totals[server.url("/malformed.xml")]["produced"],
        totals[server.url("/malformed.xml")]["dead_letter"],
    ) == (1, 1)
    assert [totals[u]["errors"] for u in broken] == [1, 1, 1]
    assert POLL_ERRORS.labels("rss")._value.get() - errors_before == 3
    records = consume(bootstrap, topics["topic"])
    assert len(records) == 3 + 55 + 5 + 1
    emm = [r for r in records if r["source"] == feed_id_for(urls[0])]
    assert [len(r["entities"]) for r in emm] == [3, 11, 6]
    assert emm[1]["entities"][0] == {"name": "BIS", "type": None, "id": "2251810"}
    assert (emm[1]["latitude"], emm[1]["longitude"]) == (28.5687, 77.2168)

    # The broken item stays in the changed feed: it is not dead-lettered a second time.
    served = server.paths["/malformed.xml"]
    served.body = served.body.replace(
        b"</channel>", b"<item><title>Second</title><link>https://example.org/b</link></item></channel>"
    )
    served.etag = '"m2"'
    totals = run_feeds([server.url("/malformed.xml")], {"bootstrap_servers": bootstrap}, once=True, **topics)
    assert (
        totals[server.url("/malformed.xml")]["produced"],
        totals[server.url("/malformed.xml")]["dead_letter"],
    ) == (1, 0)
    letters = consume(bootstrap, topics["dead_letter_topic"], "DeadLetter")
    assert [(d["stage"], d["reason"], d["errors"]) for d in letters] == [
        ("connector.rss", "parse-error", ["item 2: no title and no link"])
    ]


def test_reliefweb_file_through_the_broker_once(bootstrap, topics):
    client = {"bootstrap_servers": bootstrap}
    counts = run_reliefweb(str(RELIEFWEB_JSON), client, **topics)
    assert (counts["produced"], counts["dead_letter"], counts["pages"]) == (4, 0, 1)
    records = consume(bootstrap, topics["topic"])
    assert [r["id"] for r in records] == [
        "reliefweb:3670885",
        "reliefweb:3670541",
        "reliefweb:3670672",
        "reliefweb:3670318",
    ]
    assert records[2]["title"] == (
        "Nepal \u2013 Earthquake (National Seismological Centre, Media) (ECHO Daily Flash of 16 September)"
    )
    assert records[0]["authors"] == ["World Bank"]
    # A file already committed is not read again.
    assert run_reliefweb(str(RELIEFWEB_JSON), client, **topics)["produced"] == 0
    assert len(consume(bootstrap, topics["topic"])) == 4


def test_reliefweb_api_pages_resume_after_the_last_committed_page(bootstrap, topics, server):
    page1 = json.loads(RELIEFWEB_JSON.read_text())
    page1["totalCount"] = 6
    page1["links"]["next"]["href"] = server.url("/v1/reports?offset=4&limit=4")
    page2 = copy.deepcopy(page1)
    page2["data"] = page2["data"][:2]
    for report in page2["data"]:
        report["id"] = str(int(report["id"]) + 1)
    page2["links"]["next"]["href"] = server.url("/v1/reports?offset=8&limit=4")
    server.paths["/v1/reports?limit=4"] = Served(json.dumps(page1).encode(), content_type="application/json")
    server.paths["/v1/reports?offset=4&limit=4"] = Served(
        json.dumps(page2).encode(), content_type="application/json"
    )
    client, url = {"bootstrap_servers": bootstrap}, server.url("/v1/reports?limit=4")

    assert run_reliefweb(url, client, max_pages=1, **topics)["produced"] == 4
    second = run_reliefweb(url, client, **topics)  # resumes at page 2, stops past totalCount
    assert (second["produced"], second["pages"]) == (2, 1)
    assert run_reliefweb(url, client, **topics)["produced"] == 0
    records = consume(bootstrap, topics["topic"])
    assert [r["id"] for r in records] == [
        "reliefweb:3670885",
        "reliefweb:3670541",
        "reliefweb:3670672",
        "reliefweb:3670318",
        "reliefweb:3670886",
        "reliefweb:3670542",
    ]
    assert records[4]["feed_url"] == server.url("/v1/reports?offset=4&limit=4")
    assert [path for path, _ in server.requests] == ["/v1/reports?limit=4", "/v1/reports?offset=4&limit=4"]
