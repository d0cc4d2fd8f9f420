"""Notifiers: one per channel kind, each returning an Outcome that says whether a failure is retryable;
one retry rule (`retry.py`) and the channel's lane (router/lanes.py) decide what to do about it. Each
writes for its reader: the channel's receiver's language and the router's external_url (the console's
links), set on the channel at load."""

from __future__ import annotations

from tocsin.router.notify.alertmanager import AlertmanagerNotifier
from tocsin.router.notify.email import EmailNotifier
from tocsin.router.notify.file import FileNotifier
from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.payload import Audience
from tocsin.router.notify.webhook import WebhookNotifier

__all__ = ["Audience", "Outcome", "notifier_for"]


def notifier_for(channel, audience: Audience | None = None):
    """The notifier of a channel (router.config.Channel), writing for `audience` (default: the channel's
    receiver's language and the router's external_url)."""
    if audience is None:
        audience = Audience(channel.language, channel.external_url)
    if channel.webhook is not None:
        return WebhookNotifier(channel.webhook, audience)
    if channel.email is not None:
        return EmailNotifier(channel.email, audience)
    if channel.alertmanager is not None:
        return AlertmanagerNotifier(channel.alertmanager, audience)
    if channel.chat is not None:
        # apprise: 0.3 s to import and 0.6 s to load its services, paid only with a chat channel
        from tocsin.router.notify.chat import ChatNotifier  # noqa: PLC0415

        return ChatNotifier(channel.chat, audience)
    return FileNotifier(channel.file, audience)
