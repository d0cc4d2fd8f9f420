"""An alert's ledger entries as the console tells them, in the reader's language (the ledger's own
`describe` is the English of `tocsin ledger show`)."""

from __future__ import annotations

from collections.abc import Callable

from tocsin.router.ledger import Entry, describe

# The messages below, for the catalogue's test (gettext cannot see through the variables).
MESSAGES = (
    "%(status)s %(severity)s, event %(sequence)s: %(summary)s",
    "route %(route)s to %(receiver)s",
    "not notified to %(receiver)s: %(by)s %(source)s",
    "%(receiver)s by %(channel)s, attempt %(attempt)s: %(status)s",
    "no answer in time: level %(level)s, %(receiver)s",
    "archived: resolved more than %(days)s days ago",
    "%(kind)s: %(text)s",
)
# Values shown through gettext: what muted an alert, and how a delivery attempt ended.
VALUES = ("inhibition", "silence", "DELIVERED", "RETRYING", "FAILED")


def story_line(entry: Entry, gettext: Callable[[str], str]) -> str:
    """What one entry says, translated; the ledger's English for a kind the console does not know."""
    p, kind, _ = entry.payload, entry.kind, gettext
    if kind == "alert.received":
        a = p["alert"]
        return _(MESSAGES[0]) % {"status": _(a["status"]), "severity": _(a["severity"]),
                                 "sequence": a["sequence"], "summary": a["summary"]}  # fmt: skip
    if kind == "alert.routed":
        return "; ".join(
            _(MESSAGES[1]) % {"route": r["route"], "receiver": r["receiver"]} for r in p["routes"]
        )
    if kind == "alert.muted":
        return _(MESSAGES[2]) % {"receiver": p["receiver"], "by": _(p["by"]), "source": p["source"]}
    if kind == "notification":
        line = _(MESSAGES[3]) % {"receiver": p["receiver"], "channel": p["channel"], "attempt": p["attempt"],
                                 "status": _(p["status"])}  # fmt: skip
        return line + (f" ({p['error']})" if p.get("error") else "")
    if kind == "escalation":
        return _(MESSAGES[4]) % {"level": p["level"], "receiver": p["receiver"]}
    if kind in ("response", "comment"):
        details = [p.get("description"), p.get("reason"), p.get("referred_to")]
        text = "; ".join(d for d in details if d)
        return _(MESSAGES[6]) % {"kind": _(p["kind"]), "text": text} if text else _(p["kind"])
    if kind == "alert.archived":
        return _(MESSAGES[5]) % {"days": round(p["retention_s"] / 86400)}
    return describe(entry)
