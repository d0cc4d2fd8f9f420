"""What a notification says, in the forms receivers accept: Alertmanager's webhook JSON (version 4), so
existing Alertmanager webhook receivers work unchanged; a CloudEvents 1.0 structured event; a plain-text
e-mail; a chat message.

Each leads its reader to the answer: the alert's page in the web console (`{external_url}/alerts/{id}`,
Alertmanager's `generatorURL`) and the CLI commands that answer it, with the alert id filled in. The text
a person reads is in the receiver's language (i18n.py); labels, JSON keys and commands are not translated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shlex
import uuid
from dataclasses import dataclass
from urllib.parse import quote

from babel.numbers import format_decimal

from tocsin.router.notify.i18n import DEFAULT, translations
from tocsin.serde import wire

ZERO_TIME = "0001-01-01T00:00:00Z"  # a firing alert's endsAt, as Alertmanager sends it
SEVERITIES = ("CRITICAL", "WARNING", "WATCH", "INFO")  # a subject names the most severe first


@dataclass(frozen=True)
class Audience:
    """Who reads a notification: its receiver's language, and the router's external_url, where the web
    console and the API answer (empty: the notification has no links and its commands no --url)."""

    language: str = DEFAULT
    external_url: str = ""


def console_url(external_url: str, alert_id: str) -> str:
    """The alert's page in the web console, or "" without an external_url."""
    return f"{external_url}/alerts/{quote(alert_id, safe='')}" if external_url else ""


def ack_command(alert_id: str, audience: Audience) -> str:
    t = translations(audience.language)
    name = t.pgettext("command placeholder", "NAME")
    return f"tocsin router ack {shlex.quote(alert_id)} -r {name}{_url_option(audience)}"


def decide_command(alert_id: str, audience: Audience) -> str:
    t = translations(audience.language)
    name = t.pgettext("command placeholder", "NAME")
    text = t.pgettext("command placeholder", "TEXT")
    return (
        f"tocsin router decide {shlex.quote(alert_id)} -r {name} --action-taken {text}{_url_option(audience)}"
    )


def _url_option(audience: Audience) -> str:
    return f" --url {shlex.quote(audience.external_url)}" if audience.external_url else ""


class Message:
    """One notification: a group's alerts (or one escalated alert) for one receiver."""

    def __init__(
        self,
        receiver: str,
        group_key: str,
        group_labels: dict,
        alerts: list[dict],
        level: int = 0,
        external_url: str = "",
    ):
        self.receiver = receiver
        self.group_key = group_key
        self.group_labels = group_labels
        self.alerts = alerts
        self.level = level
        self.external_url = external_url

    @property
    def status(self) -> str:
        return "firing" if any(a["status"] != "RESOLVED" for a in self.alerts) else "resolved"

    def _audience(self, audience: Audience | None) -> Audience:
        return audience if audience is not None else Audience(external_url=self.external_url)

    def alertmanager(self, audience: Audience | None = None) -> dict:
        audience = self._audience(audience)
        items = [_am_alert(a, audience) for a in self.alerts]
        common_labels = _common([i["labels"] for i in items])
        common_annotations = _common([i["annotations"] for i in items])
        return {
            "version": "4",
            "groupKey": self.group_key,
            "truncatedAlerts": 0,
            "status": self.status,
            "receiver": self.receiver,
            "groupLabels": dict(self.group_labels),
            "commonLabels": common_labels,
            "commonAnnotations": common_annotations,
            "externalURL": audience.external_url,
            "alerts": items,
        }

    def cloudevent(self, audience: Audience | None = None) -> dict:
        audience = self._audience(audience)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "specversion": "1.0",
            "type": "org.tocsin.alert.notification.v1",
            # One setting for the deployment (--cloudevents-source, TOCSIN_CLOUDEVENTS_SOURCE): a fixed
            # source could not tell two deployments' events apart.
            "source": wire.current().cloudevents_source,
            "id": str(uuid.uuid4()),
            "time": now,
            "subject": self.group_key,
            "datacontenttype": "application/json",
            "data": {
                "receiver": self.receiver,
                "status": self.status,
                "escalation_level": self.level,
                "group_labels": dict(self.group_labels),
                "external_url": audience.external_url,
                "alerts": [
                    {**_plain(a), "console_url": console_url(audience.external_url, a["id"])}
                    for a in self.alerts
                ],
            },
        }

    def subject(self, audience: Audience | None = None) -> str:
        t = translations(self._audience(audience).language)
        count = len(self.alerts)
        prefix = t.gettext("[TOCSIN ESCALATION]") if self.level else "[TOCSIN]"
        present = {a["severity"] for a in self.alerts}
        ordered = [s for s in SEVERITIES if s in present] + sorted(present - set(SEVERITIES))
        severities = "/".join(_severity(t, s) for s in ordered)
        what = t.ngettext(
            "{status} {severities}: {count} alert", "{status} {severities}: {count} alerts", count
        ).format(status=_status(t, self.status.upper()), severities=severities, count=count)
        where = ", ".join(f"{k}={v}" for k, v in self.group_labels.items())
        return f"{prefix} {what} ({where})" if where else f"{prefix} {what}"

    def email(self, audience: Audience | None = None) -> tuple[str, str]:
        audience = self._audience(audience)
        t = translations(audience.language)
        count = len(self.alerts)
        lines = [
            t.ngettext(
                "To {receiver}: {count} alert, group {group}.",
                "To {receiver}: {count} alerts, group {group}.",
                count,
            ).format(receiver=self.receiver, count=count, group=self.group_key),
            "",
            *self._escalated(t),
        ]
        for a in self.alerts:
            lines += _alert_lines(a, audience, t, evidence=True)
            lines.append("")
        lines += _footer(audience, t)
        return self.subject(audience), "\n".join(lines)

    def chat(self, audience: Audience | None = None) -> tuple[str, str]:
        """(title, body) of a chat message: shorter than the e-mail (no evidence: the console has it)."""
        audience = self._audience(audience)
        t = translations(audience.language)
        lines = [*self._escalated(t)]
        for a in self.alerts:
            lines += _alert_lines(a, audience, t, evidence=False)
            lines.append("")
        lines += _footer(audience, t)
        return self.subject(audience), "\n".join(lines)

    def _escalated(self, t) -> list[str]:
        if not self.level:
            return []
        return [
            t.gettext("Escalated (level {level}): nobody acknowledged in time.").format(level=self.level),
            "",
        ]


def _alert_lines(alert: dict, audience: Audience, t, evidence: bool) -> list[str]:
    lines = [f"{_status(t, alert['status'])} {_severity(t, alert['severity'])}  {alert['id']}"]
    lines.append(f"  {alert['summary']}")
    for v in alert["values"]:
        value, threshold = _number(v["value"], audience), _number(v["threshold"], audience)
        lines.append(f"  {v['name']}: {value} {v['comparator']} {threshold}")
    if evidence:
        word = t.gettext("evidence")
        for e in alert["evidence"][:5]:
            lines.append(f"  {word} {e['record_id']} {e.get('title') or ''} {e.get('url') or ''}".rstrip())
    return lines + [f"  {line}" for line in hints(alert["id"], audience)]


def hints(alert_id: str, audience: Audience) -> list[str]:
    """Where to answer an alert: its console page (with an external_url), the commands that answer it."""
    t = translations(audience.language)
    lines = []
    if audience.external_url:
        lines.append(t.gettext("Console: {url}").format(url=console_url(audience.external_url, alert_id)))
    lines.append(t.gettext("Acknowledge: {command}").format(command=ack_command(alert_id, audience)))
    lines.append(t.gettext("Decide: {command}").format(command=decide_command(alert_id, audience)))
    return lines


def _footer(audience: Audience, t) -> list[str]:
    lines = [
        t.gettext(
            "Other decisions: --declined {reason} or --referred-to {receiver} (instead of --action-taken)."
        ).format(
            reason=t.pgettext("command placeholder", "REASON"),
            receiver=t.pgettext("command placeholder", "RECEIVER"),
        ),
        t.gettext("The CLI reads your organisation's token from TOCSIN_TOKEN."),
    ]
    if audience.external_url:
        lines.append(t.gettext("All your organisation's alerts: {url}/").format(url=audience.external_url))
    else:
        lines.append(t.gettext("Give it the router's address with --url or TOCSIN_ROUTER_URL."))
    return lines


def _status(t, status: str) -> str:
    """An alert's (or a notification's) status, as a reader of the language writes it."""
    names = {
        "FIRING": t.pgettext("alert status", "FIRING"),
        "UPDATED": t.pgettext("alert status", "UPDATED"),
        "RESOLVED": t.pgettext("alert status", "RESOLVED"),
    }
    return names.get(status, status)


def _severity(t, severity: str) -> str:
    names = {
        "INFO": t.pgettext("severity", "INFO"),
        "WATCH": t.pgettext("severity", "WATCH"),
        "WARNING": t.pgettext("severity", "WARNING"),
        "CRITICAL": t.pgettext("severity", "CRITICAL"),
    }
    return names.get(severity, severity)


def _number(value: float, audience: Audience) -> str:
    """Six significant digits, as the language writes numbers (41, 0.35; in French 0,35, 12 345)."""
    return format_decimal(float(f"{value:.6g}"), locale=audience.language, decimal_quantization=False)


def _am_alert(alert: dict, audience: Audience) -> dict:
    labels = dict(alert["labels"])
    annotations = {
        "summary": alert["summary"],
        "rule_version": alert["rule_version"],
        "alert_id": alert["id"],
        # Alertmanager's usual place for the text a person reads (its Slack and e-mail templates show
        # it): where and how to answer, in the receiver's language.
        "description": "\n".join(hints(alert["id"], audience)),
    }
    if alert["evidence"]:
        annotations["evidence"] = " ".join(e.get("url") or e["record_id"] for e in alert["evidence"][:5])
    return {
        "status": "resolved" if alert["status"] == "RESOLVED" else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(alert["first_fired"]),
        "endsAt": _rfc3339(alert["last_updated"]) if alert["status"] == "RESOLVED" else ZERO_TIME,
        "generatorURL": console_url(audience.external_url, alert["id"]),
        "fingerprint": hashlib.sha256(alert["id"].encode()).hexdigest()[:16],
    }


def _plain(alert: dict) -> dict:
    keys = (
        "id",
        "sequence",
        "rule_id",
        "rule_version",
        "status",
        "severity",
        "country",
        "region",
        "summary",
        "values",
        "evidence",
        "labels",
    )
    out = {k: alert[k] for k in keys}
    for k in ("window_start", "window_end", "first_fired", "last_updated"):
        out[k] = _rfc3339(alert[k])
    return out


def _common(dicts: list[dict]) -> dict:
    if not dicts:
        return {}
    first = dicts[0]
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def _rfc3339(value) -> str:
    if isinstance(value, dt.datetime):
        stamp = value
    else:
        stamp = dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC)
    return stamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
