"""Notifiers: one per channel kind, each returning an Outcome that says whether a failure is retryable;
one retry layer (`retry.deliver`) decides what to do about it."""

from __future__ import annotations

from tocsin.router.notify.email import EmailNotifier
from tocsin.router.notify.file import FileNotifier
from tocsin.router.notify.outcome import Outcome
from tocsin.router.notify.webhook import WebhookNotifier

__all__ = ["Outcome", "notifier_for"]


def notifier_for(channel):
    if channel.webhook is not None:
        return WebhookNotifier(channel.webhook)
    if channel.email is not None:
        return EmailNotifier(channel.email)
    return FileNotifier(channel.file)
