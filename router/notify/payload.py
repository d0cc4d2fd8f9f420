"""What a notification says, in the forms receivers accept: Alertmanager's webhook JSON (version 4), so
existing Alertmanager webhook receivers work unchanged; a CloudEvents 1.0 structured event; a plain-text
e-mail."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

ZERO_TIME = "0001-01-01T00:00:00Z"  # a firing alert's endsAt, as Alertmanager sends it


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

    def alertmanager(self) -> dict:
        items = [_am_alert(a, self.external_url) for a in self.alerts]
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
            "externalURL": self.external_url,
            "alerts": items,
        }

    def cloudevent(self) -> dict:
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "specversion": "1.0",
            "type": "org.tocsin.alert.notification.v1",
            "source": "router",
            "id": str(uuid.uuid4()),
            "time": now,
            "subject": self.group_key,
            "datacontenttype": "application/json",
            "data": {
                "receiver": self.receiver,
                "status": self.status,
                "escalation_level": self.level,
                "group_labels": dict(self.group_labels),
                "alerts": [_plain(a) for a in self.alerts],
            },
        }

    def email(self) -> tuple[str, str]:
        severities = sorted({a["severity"] for a in self.alerts})
        where = ", ".join(f"{k}={v}" for k, v in self.group_labels.items())
        prefix = "[TOCSIN ESCALATION] " if self.level else "[TOCSIN] "
        subject = f"{prefix}{self.status.upper()} {'/'.join(severities)}: {len(self.alerts)} alert(s) {where}"
        lines = [f"To {self.receiver}: {len(self.alerts)} alert(s), group {self.group_key}.", ""]
        if self.level:
            lines += [f"Escalated (level {self.level}): nobody acknowledged in time.", ""]
        for a in self.alerts:
            lines.append(f"{a['status']} {a['severity']}  {a['id']}")
            lines.append(f"  {a['summary']}")
            for v in a["values"]:
                lines.append(f"  {v['name']}: {v['value']:g} {v['comparator']} {v['threshold']:g}")
            for e in a["evidence"][:5]:
                lines.append(
                    f"  evidence {e['record_id']} {e.get('title') or ''} {e.get('url') or ''}".rstrip()
                )
            lines.append("")
        lines.append("Acknowledge or record a decision: tocsin ack / tocsin decide, or the router's API.")
        return subject, "\n".join(lines)


def _am_alert(alert: dict, external_url: str) -> dict:
    labels = dict(alert["labels"])
    annotations = {
        "summary": alert["summary"],
        "rule_version": alert["rule_version"],
        "alert_id": alert["id"],
    }
    if alert["evidence"]:
        annotations["evidence"] = " ".join(e.get("url") or e["record_id"] for e in alert["evidence"][:5])
    return {
        "status": "resolved" if alert["status"] == "RESOLVED" else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": _rfc3339(alert["first_fired"]),
        "endsAt": _rfc3339(alert["last_updated"]) if alert["status"] == "RESOLVED" else ZERO_TIME,
        "generatorURL": external_url,
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
