"""Escalation, pure: if nobody acknowledges an alert, notify the next level, and repeat until someone does.

A policy is steps (receiver, delay after the previous notification of this alert) and an optional repeat
interval for the last step. The route's own receiver is level 0, notified through its group; step k is
level k + 1. `next_step(policy, level, last_at)` says who is due next and when.
"""

from __future__ import annotations

from tocsin.router.config import Policy


def next_step(policy: Policy, level: int, last_at: float) -> tuple[int, str, float] | None:
    """(next level, its receiver, when) after `level` was notified at last_at; None when nothing follows."""
    if level < len(policy.steps):
        receiver, after = policy.steps[level]
        return level + 1, receiver, last_at + after
    if policy.repeat_s is not None:
        return level + 1, policy.steps[-1][0], last_at + policy.repeat_s
    return None
