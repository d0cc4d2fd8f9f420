"""Alertmanager channel: push tocsin's alerts to an existing Alertmanager's `POST /api/v2/alerts`, as
Prometheus does, so a team's own Alertmanager routes, silences and shows them with its other alerts.

Each alert goes as Prometheus sends one: its labels; annotations with the summary, where and how to
answer (`description`), the evidence links and tocsin's `alert_id` and `rule_version`; `startsAt` when
it first fired; `generatorURL` its page in tocsin's console (external_url). A firing alert's `endsAt` is
four re-send intervals ahead (as Prometheus sets four resend_delays), so Alertmanager resolves it by
itself if tocsin stops saying it fires; the router re-sends firing alerts every interval
(router/resend.py). A resolved one's `endsAt` is when it resolved: Alertmanager resolves it at once.

Failures are classified as the webhook's: 5xx, 408, 429, timeouts and refused connections may pass and
are retried by the router's one retry rule (Retry-After honoured); other client errors (Alertmanager's
400 for an invalid alert) will not.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time

from tocsin.router.notify.http import deliver
from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience, console_url, hints

API_PATH = "/api/v2/alerts"
HORIZON_INTERVALS = 4  # a firing alert's endsAt, in re-send intervals: three re-sends may fail first


def fingerprint(alert_id: str) -> str:
    """The alert's fingerprint in every Alertmanager shape tocsin writes (as its webhook payload's)."""
    return hashlib.sha256(alert_id.encode()).hexdigest()[:16]


def rfc3339(seconds: float) -> str:
    """A time as Alertmanager writes one (UTC, milliseconds)."""
    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def annotations(alert: dict, audience: Audience) -> dict[str, str]:
    """What a person reads of an alert, as annotations (Alertmanager's tools show them all)."""
    out = {
        "summary": alert["summary"],
        # Alertmanager's usual place for the text a person reads (its templates show it): where and how
        # to answer, in the receiver's language.
        "description": "\n".join(hints(alert["id"], audience)),
        "alert_id": alert["id"],
        "rule_version": alert["rule_version"],
    }
    if alert["evidence"]:
        out["evidence"] = " ".join(e.get("url") or e["record_id"] for e in alert["evidence"][:5])
    return out


def postable_alert(alert: dict, audience: Audience, now: float, horizon_s: float) -> dict:
    """One alert as Alertmanager's postableAlert: firing until `now + horizon_s`, or ended when it resolved.

    The labels are the alert's own and stable: they are its identity in Alertmanager. Nothing that changes
    while it fires (an escalation level, an acknowledgement) is in it either: an alert is pushed by group
    notifications, escalations and re-sends alike, and each would set it to what it knew. Those are in
    tocsin's own Alertmanager API (router/alertmanager), where the router knows them."""
    resolved = alert["status"] == "RESOLVED"
    out = {
        "labels": dict(alert["labels"]),
        "annotations": annotations(alert, audience),
        "startsAt": rfc3339(alert["first_fired"] / 1000),
        "endsAt": rfc3339(alert["last_updated"] / 1000 if resolved else now + horizon_s),
    }
    link = console_url(audience.external_url, alert["id"])
    if link:
        out["generatorURL"] = link
    return out


class AlertmanagerNotifier:
    kind = "alertmanager"

    def __init__(self, spec, audience: Audience | None = None, clock=time.time):
        self.spec = spec
        self.audience = audience or Audience()
        self.clock = clock

    @property
    def horizon_s(self) -> float:
        return HORIZON_INTERVALS * self.spec.resend

    def body(self, message) -> list[dict]:
        now = self.clock()
        return [postable_alert(a, self.audience, now, self.horizon_s) for a in message.alerts]

    def render(self, message) -> bytes:
        # The endsAt of firing alerts moves with the clock: the digest the ledger keeps is of the body as
        # rendered before the first attempt, each attempt sends one with a fresh horizon.
        return json.dumps(self.body(message), sort_keys=True).encode()

    def send(self, message) -> Outcome:
        url = self.spec.url.rstrip("/") + API_PATH
        headers = {"Content-Type": "application/json", "User-Agent": "tocsin-router", **self.spec.headers}
        outcome, said = deliver(url, self.render(message), headers, self.spec.timeout, self.spec.http_config)
        said = said.strip()
        if not outcome.ok and said:
            # Alertmanager says why it refused (its 400 names the invalid label or time): kept in the ledger
            outcome = outcome._replace(detail=f"{outcome.detail} {said[:300]}")
        return outcome
