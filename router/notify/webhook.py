"""Webhook channel: POST the Alertmanager-compatible JSON (or a CloudEvent) to a URL."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience


class WebhookNotifier:
    kind = "webhook"

    def __init__(self, spec, audience: Audience | None = None):
        self.spec = spec
        self.timeout = spec.timeout
        self.audience = audience or Audience()

    def render(self, message) -> bytes:
        if self.spec.format == "cloudevents":
            body = message.cloudevent(self.audience)
        else:
            body = message.alertmanager(self.audience)
        return json.dumps(body, sort_keys=True).encode()

    def send(self, message) -> Outcome:
        content_type = (
            "application/cloudevents+json" if self.spec.format == "cloudevents" else "application/json"
        )
        request = urllib.request.Request(
            self.spec.url,
            data=self.render(message),
            method="POST",
            headers={"Content-Type": content_type, "User-Agent": "tocsin-router", **self.spec.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Outcome(True, detail=f"HTTP {response.status}")
        except urllib.error.HTTPError as error:
            # Like Alertmanager: server errors and throttling may pass; other client errors will not.
            retryable = error.code >= 500 or error.code in (408, 429)
            return Outcome(False, retryable, f"HTTP {error.code}")
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as error:
            return Outcome(False, True, f"{type(error).__name__}: {getattr(error, 'reason', error)}")
