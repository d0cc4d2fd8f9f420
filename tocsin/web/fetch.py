"""A bounded HTTP GET with conditional validators (ETag / Last-Modified), gzip accepted.

In the core because more than one stage reads the web this way: the feed connector polls with the
stored validators so an unchanged feed costs a 304, and the ReliefWeb connector fetches API pages. A body
is read up to MAX_BYTES (after decompression too), so a bad source cannot exhaust memory.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass

TIMEOUT = 30.0
MAX_BYTES = 32 * 1024 * 1024
USER_AGENT = "tocsin-feed-reader/0.1"


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
