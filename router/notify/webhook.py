"""Webhook channel: POST the Alertmanager-compatible JSON (or a CloudEvent) to a URL."""

from __future__ import annotations

import json

from tocsin.router.notify.http import deliver
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
        headers = {"Content-Type": content_type, "User-Agent": "tocsin-router", **self.spec.headers}
        return deliver(self.spec.url, self.render(message), headers, self.timeout, self.spec.http_config)[0]
