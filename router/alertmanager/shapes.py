"""Alertmanager's API v2 JSON shapes of tocsin's alerts, groups, silences and status, pure (the spec:
api/v2/openapi.yaml in github.com/prometheus/alertmanager).

What tocsin adds to an alert travels in annotations, which amtool (`-o extended`), Grafana and Karma show:
`acknowledged` (when and by whom), `decision` (which, by whom, and its text), `escalation_level` (0: the
route's receiver), `console_url` (also the alert's generatorURL), beside the notifications' own
`summary`, `description`, `alert_id`, `rule_version` and `evidence`.
"""

from __future__ import annotations

import re

from tocsin.router.alertmanager.filters import AlertQuery, SilenceQuery, as_api_matcher
from tocsin.router.matchers import matches_all
from tocsin.router.notify.alertmanager import annotations, fingerprint, rfc3339
from tocsin.router.notify.payload import Audience, console_url

# A firing alert's endsAt, as Alertmanager reports an alert Prometheus sent: updated plus its default
# resolve_timeout (tocsin ends an alert when its rule says so, not on a timeout).
RESOLVE_TIMEOUT_S = 300
# The Alertmanager release whose API this is: amtool warns when its own major.minor differs.
API_VERSION = "0.35.0"


def gettable_alert(
    alert: dict,
    receivers: list[str],
    silenced_by: list[str],
    inhibited_by: list[str],
    level: int,
    audience: Audience,
    now: float,
) -> dict:
    """A firing tocsin alert as a gettableAlert; `alert` as Router.visible lists it (with its answers)."""
    notes = annotations(alert, audience)
    notes["escalation_level"] = str(level)
    if alert.get("acknowledged"):
        ack = alert["acknowledged"]
        notes["acknowledged"] = f"{rfc3339(ack['at'])} by {ack['organisation']}/{ack['responder']}"
    if alert.get("decision"):
        d = alert["decision"]
        said = d.get("description") or d.get("reason") or d.get("referred_to") or ""
        notes["decision"] = f"{d['kind'].lower()} by {d['organisation']}/{d['responder']}" + (
            f": {said}" if said else ""
        )
    link = console_url(audience.external_url, alert["id"])
    if link:
        notes["console_url"] = link
    suppressed = bool(silenced_by or inhibited_by)
    return {
        "labels": dict(alert["labels"]),
        "annotations": notes,
        "receivers": [{"name": r} for r in receivers],
        "fingerprint": fingerprint(alert["id"]),
        "startsAt": rfc3339(alert["first_fired"] / 1000),
        "updatedAt": rfc3339(alert["last_updated"] / 1000),
        "endsAt": rfc3339(now + RESOLVE_TIMEOUT_S),
        "generatorURL": link,
        "status": {
            "state": "suppressed" if suppressed else "active",
            "silencedBy": list(silenced_by),
            "inhibitedBy": list(inhibited_by),
            "mutedBy": [],
        },
    }


def kept(query: AlertQuery, alert: dict) -> bool:
    """Whether a gettableAlert passes the query, as Alertmanager filters: its labels match every matcher,
    one of its receivers the receiver regex, and its state is one the flags ask for. `unprocessed` has
    nothing to select: every alert tocsin lists has been routed (Alertmanager's "processed")."""
    if not matches_all(query.matchers, alert["labels"]):
        return False
    if query.receiver is not None and not any(query.receiver.match(r["name"]) for r in alert["receivers"]):
        return False
    status = alert["status"]
    if not query.active and status["state"] == "active":
        return False
    if not query.silenced and status["silencedBy"]:
        return False
    return query.inhibited or not status["inhibitedBy"]


def alert_group(labels: dict, receiver: str, alerts: list[dict]) -> dict:
    return {"labels": dict(labels), "routeLabels": {}, "receiver": {"name": receiver}, "alerts": alerts}


def silence_state(starts_at: float, ends_at: float, now: float) -> str:
    if now < starts_at:
        return "pending"
    return "active" if now < ends_at else "expired"


def gettable_silence(silence, now: float) -> dict:
    """A tocsin silence (router.silence.Silence) as a gettableSilence. Its updatedAt is its last change
    the router's state holds: its end if it has ended (an expiry sets it), else its start."""
    state = silence_state(silence.starts_at, silence.ends_at, now)
    return {
        "id": silence.id,
        "status": {"state": state},
        "updatedAt": rfc3339(silence.ends_at if state == "expired" else silence.starts_at),
        "matchers": [as_api_matcher(m) for m in silence.matchers],
        "startsAt": rfc3339(silence.starts_at),
        "endsAt": rfc3339(silence.ends_at),
        "createdBy": silence.author,
        "comment": silence.reason,
        "annotations": {},
    }


def silence_kept(query: SilenceQuery, silence: dict) -> bool:
    """As Alertmanager filters silences: each filter matcher must match the value the silence's own
    matcher of that name gives it (a silence without a matcher of that name is left out)."""
    values = {m["name"]: m["value"] for m in silence["matchers"]}
    for m in query.matchers:
        if m.name not in values or not m.matches({m.name: values[m.name]}):
            return False
    state = silence["status"]["state"]
    return {"active": query.active, "pending": query.pending, "expired": query.expired}[state]


def status(organisation: str, receivers: list[str], started_at: float, version: str) -> dict:
    """The alertmanagerStatus: one instance (no cluster), and as its config a minimal Alertmanager
    configuration naming the organisation's receivers (tocsin's own routing is not Alertmanager's, and
    another organisation's receivers are not shown)."""
    names = receivers or ["tocsin"]
    original = "\n".join(
        [
            f"# tocsin's router, as organisation {_yaml_text(organisation)} sees it: its receivers.",
            f"route:\n  receiver: {_yaml_text(names[0])}",
            "receivers:",
            *(f"  - name: {_yaml_text(n)}" for n in names),
            "",
        ]
    )
    return {
        "cluster": {"name": "tocsin", "status": "disabled", "peers": []},
        "versionInfo": {
            "version": API_VERSION,
            "revision": f"tocsin {version}",
            "branch": "tocsin",
            "buildUser": "tocsin",
            "buildDate": "",
            "goVersion": "none (tocsin's router, Python)",
        },
        "config": {"original": original},
        "uptime": rfc3339(started_at),
    }


def _yaml_text(text: str) -> str:
    return text if re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", text) else '"' + text.replace('"', '\\"') + '"'
