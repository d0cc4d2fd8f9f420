"""Notifiers: one per channel kind, each returning an Outcome that says whether a failure is retryable;
one retry layer (`retry.deliver`) decides what to do about it."""

from __future__ import annotations

from typing import NamedTuple


class Outcome(NamedTuple):
    ok: bool
    retryable: bool = False
    detail: str = ""


def notifier_for(channel):
    from tocsin.router.notify.email import EmailNotifier
    from tocsin.router.notify.file import FileNotifier
    from tocsin.router.notify.webhook import WebhookNotifier

    if channel.webhook is not None:
        return WebhookNotifier(channel.webhook)
    if channel.email is not None:
        return EmailNotifier(channel.email)
    return FileNotifier(channel.file)
