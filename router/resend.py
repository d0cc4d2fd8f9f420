"""Re-sending firing alerts to the Alertmanagers of `alertmanager` channels before their endsAt passes.

An alert pushed firing carries an endsAt four re-send intervals ahead (router/notify/alertmanager.py);
Alertmanager resolves it then unless told again, as it does Prometheus's. Notifications come at
group_interval and repeat_interval (hours), so the router re-sends, every channel's `resend` interval
(1m by default, Prometheus's resend_delay), each firing alert that was notified to the channel's receiver
and that tocsin does not mute now. `resend_due` says which are due at `now`, from the router's state: it is
pure; `KeepAlive` sends them, called from the router's tick.

Re-sends are keep-alives, not notifications: they are not in the ledger (an entry a minute for every firing
alert would swamp it) and not retried (the next one comes an interval later, three before Alertmanager
would resolve the alert); each is counted (tocsin_router_alertmanager_resends_total) and a failure logged.
A muted alert is not kept alive: Alertmanager resolves it at its endsAt, and the re-sends bring it back
when tocsin unmutes it, as tocsin's own notifications would.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

from tocsin.router.inhibit import inhibited_by
from tocsin.router.notify.alertmanager import AlertmanagerNotifier
from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience, Message
from tocsin.router.silence import silenced_by
from tocsin.telemetry.logging import get_logger
from tocsin.telemetry.metrics import counter

RESENDS = counter(
    "tocsin_router_alertmanager_resends_total",
    "Firing alerts re-sent to an Alertmanager before their endsAt (keep-alives, not notifications)",
    ["receiver", "outcome"],
)


@dataclass(frozen=True)
class Due:
    receiver: str
    channel: int  # its index in the receiver's channels
    alerts: tuple[dict, ...]


def resend_due(state, config, sent: dict, now: float) -> list[Due]:
    """The firing alerts each alertmanager channel must re-send at `now`.

    `sent`: (receiver, channel index, alert id) -> when it was last re-sent. An alert was last pushed at
    the later of that and its group's last notification to the receiver; one a receiver got by escalation
    or referral (in none of its groups) counts from its first notification, so a restarted router re-sends
    at once what it cannot date. An alert still waiting in a group of the receiver (group_wait) was never
    pushed and is not due."""
    firing = [a for a in state.alerts.values() if a["status"] != "RESOLVED"]
    out = []
    for name, receiver in config.receivers.items():
        channels = [
            (i, c.alertmanager) for i, c in enumerate(receiver.channels) if c.alertmanager is not None
        ]
        if not channels:
            continue
        told: dict[str, float] = {}
        waiting = set()
        for group in state.groups.values():
            if group.receiver != name:
                continue
            notified = {alert_id for alert_id, _ in group.notified}
            for alert_id in group.alerts:
                if alert_id in notified:
                    told[alert_id] = max(told.get(alert_id, 0.0), group.notified_at)
                else:
                    waiting.add(alert_id)
        candidates = []
        for alert in firing:
            alert_id = alert["id"]
            if name not in state.routed.get(alert_id, ()):
                continue
            last = told.get(alert_id)
            if last is None:
                if alert_id in waiting or alert_id not in state.first_notified:
                    continue
                last = state.first_notified[alert_id]
            if _muted(alert, firing, state, config, now):
                continue
            candidates.append((alert, last))
        for index, spec in channels:
            alerts = tuple(
                alert
                for alert, last in candidates
                if now >= max(last, sent.get((name, index, alert["id"]), 0.0)) + spec.resend
            )
            if alerts:
                out.append(Due(name, index, alerts))
    return out


def _muted(alert: dict, firing: list, state, config, now: float) -> bool:
    return (
        inhibited_by(alert, firing, config.inhibitions) is not None
        or silenced_by(alert["labels"], state.silences.values(), now) is not None
    )


class KeepAlive:
    """Picks what `resend_due` says under the router's lock (the router calls `tick` from its own) and
    sends it from a thread of its own, so an Alertmanager that hangs holds back neither the router nor
    its lanes (router/lanes.py)."""

    def __init__(self, config):
        self.config = config
        self.sent: dict[tuple[str, int, str], float] = {}
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.sender: threading.Thread | None = None
        self.log = get_logger(stage="router")
        self.wanted = any(c.alertmanager is not None for r in config.receivers.values() for c in r.channels)

    def tick(self, state, now: float) -> None:
        if not self.wanted:  # no alertmanager channel: nothing to keep alive, nothing to compute each tick
            return
        for due in resend_due(state, self.config, self.sent, now):
            # Marked sent when picked, failed or not: the next try one interval later, not every tick.
            for alert in due.alerts:
                self.sent[(due.receiver, due.channel, alert["id"])] = now
            self.queue.put(due)
            if self.sender is None:
                self.sender = threading.Thread(
                    target=self._send_forever, name="alertmanager re-sends", daemon=True
                )
                self.sender.start()
        # Forget alerts the router no longer holds firing (resolved, archived).
        firing = {a["id"] for a in state.alerts.values() if a["status"] != "RESOLVED"}
        for key in [k for k in self.sent if k[2] not in firing]:
            del self.sent[key]

    def _send_forever(self) -> None:
        while True:
            self.send(self.queue.get())

    def send(self, due: Due) -> bool:
        channel = self.config.receivers[due.receiver].channels[due.channel]
        notifier = AlertmanagerNotifier(
            channel.alertmanager, Audience(channel.language, channel.external_url)
        )
        try:
            outcome = notifier.send(Message(due.receiver, f"resend:{due.receiver}", {}, list(due.alerts)))
        except Exception as error:  # noqa: BLE001 (a bug must not end the re-sends: a failure)
            outcome = Outcome(False, True, f"{type(error).__name__}: {error}")
        RESENDS.labels(due.receiver, "sent" if outcome.ok else "failed").inc(len(due.alerts))
        if not outcome.ok:
            self.log.warning(
                "alertmanager re-send failed",
                receiver=due.receiver,
                alerts=len(due.alerts),
                error=outcome.detail,
            )
        return outcome.ok
