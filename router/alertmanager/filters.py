"""The queries of Alertmanager's API v2, pure: `filter` matchers, the state flags, the receiver regex, and
a posted silence's matchers, each refused with one line that says what is wrong (the API's 400).

A filter is one matcher a value, repeated (`filter=alertname="x"&filter=country=~"E.*"`), in the syntax
routes and silences use (router/matchers.py); Alertmanager's braces (`{a="b"}`) are refused as it refuses
them in one filter value. The flags take what Alertmanager's server takes (go-openapi's booleans).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from tocsin.router.matchers import Matcher, MatcherError, parse_matcher

TRUE = ("true", "1", "yes", "y", "on", "ok")
FALSE = ("false", "0", "no", "n", "off")
ALERT_FLAGS = ("active", "silenced", "inhibited", "unprocessed", "muted")
SILENCE_FLAGS = ("active", "pending", "expired")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class BadQuery(ValueError):
    """Every problem of a query or body, each '<parameter>: <message>'."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("; ".join(errors))


@dataclass(frozen=True)
class AlertQuery:
    matchers: tuple[Matcher, ...] = ()
    receiver: re.Pattern | None = None
    active: bool = True
    silenced: bool = True
    inhibited: bool = True
    unprocessed: bool = True
    muted: bool = True  # alerts/groups only: keep groups whose every alert is muted


@dataclass(frozen=True)
class SilenceQuery:
    matchers: tuple[Matcher, ...] = ()
    active: bool = True
    pending: bool = True
    expired: bool = True


def parse_filters(values: list[str]) -> tuple[tuple[Matcher, ...], list[str]]:
    """The matchers of `filter` values, and the errors of those that are not one."""
    matchers, errors = [], []
    for text in values:
        if text.strip().startswith("{") or text.strip().endswith("}"):
            errors.append(f'filter: {text!r} has braces: give one matcher a filter, like alertname="x"')
            continue
        try:
            matchers.append(parse_matcher(text))
        except MatcherError as error:
            errors.append(f"filter: {error}")
    return tuple(matchers), errors


def alert_query(params: list[tuple[str, str]]) -> AlertQuery:
    """An alerts (or alert groups) query from its parameters, in order; BadQuery lists every problem."""
    filters = [value for key, value in params if key == "filter"]
    matchers, errors = parse_filters(filters)
    flags = _flags(params, ALERT_FLAGS, errors)
    receiver = None
    given = [value for key, value in params if key == "receiver"]
    if given and given[-1] != "":
        try:
            re.compile(given[-1])  # its own errors, at its own positions
            # Anchored, as Alertmanager anchors it: "igad" is not "igad-room"
            receiver = re.compile(f"^(?:{given[-1]})$")
        except re.error as error:
            errors.append(f"receiver: {given[-1]!r} is not a regular expression: {error}")
    if any(key == "receiver_matchers" and value for key, value in params):
        errors.append("receiver_matchers: tocsin's receivers have no labels to match; use receiver")
    if errors:
        raise BadQuery(errors)
    return AlertQuery(matchers, receiver, **flags)


def silence_query(params: list[tuple[str, str]]) -> SilenceQuery:
    matchers, errors = parse_filters([value for key, value in params if key == "filter"])
    flags = _flags(params, SILENCE_FLAGS, errors)
    if errors:
        raise BadQuery(errors)
    return SilenceQuery(matchers, **flags)


def _flags(params: list[tuple[str, str]], names: tuple[str, ...], errors: list[str]) -> dict[str, bool]:
    out = {}
    for key, value in params:
        if key not in names:
            continue
        word = value.strip().lower()
        if word in TRUE:
            out[key] = True
        elif word in FALSE:
            out[key] = False
        else:
            errors.append(f"{key}: {value!r} is not a boolean (true or false)")
    return out


def silence_matchers(given) -> tuple[list[str], list[str]]:
    """A posted silence's matchers ([{name, value, isRegex, isEqual}]) as tocsin's matcher texts, and the
    errors of those that are not one."""
    if not isinstance(given, list) or not given:
        return [], ["matchers: at least one is needed (a silence of everything is not allowed)"]
    texts, errors = [], []
    for i, m in enumerate(given):
        where = f"matchers.{i}"
        if not isinstance(m, dict):
            errors.append(f"{where}: an object {{name, value, isRegex, isEqual}} is needed")
            continue
        name, value = m.get("name"), m.get("value")
        is_regex, is_equal = m.get("isRegex"), m.get("isEqual", True)
        problems = []
        if not isinstance(name, str) or not _LABEL_NAME.fullmatch(name):
            problems.append(f"{where}.name: {name!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        if not isinstance(value, str):
            problems.append(f"{where}.value: a string is needed")
        elif value.endswith("\\"):  # the closing quote would be escaped
            problems.append(f"{where}.value: {value!r} ends with a backslash, which a matcher cannot hold")
        if not isinstance(is_regex, bool):
            problems.append(f"{where}.isRegex: true or false is needed")
        if not isinstance(is_equal, bool):
            problems.append(f"{where}.isEqual: true or false is needed")
        if problems:
            errors += problems
            continue
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        text = f'{name}{op[is_regex, is_equal]}"{value.replace(chr(34), chr(92) + chr(34))}"'
        if is_regex:
            try:
                re.compile(value)
            except re.error as error:
                errors.append(f"{where}.value: {value!r} is not a regular expression: {error}")
                continue
        try:
            parsed = parse_matcher(text)
        except MatcherError:
            parsed = None
        if parsed is None or parsed.value != value:  # a backslash before a quote reads otherwise
            errors.append(f"{where}.value: {value!r} cannot be written as a matcher's quoted value")
            continue
        texts.append(text)
    return texts, errors


def as_api_matcher(text: str) -> dict:
    """A matcher text as the API's {name, value, isRegex, isEqual}."""
    m = parse_matcher(text)
    return {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"), "isEqual": m.op in ("=", "=~")}


def parse_time(value, where: str, errors: list[str]) -> float | None:
    """Seconds since the epoch of an RFC 3339 time (Go writes nanoseconds; Python keeps microseconds)."""
    if not isinstance(value, str):
        errors.append(f"{where}: an RFC 3339 time like 2026-01-02T15:04:05Z is needed")
        return None
    try:
        stamp = dt.datetime.fromisoformat(value)
    except ValueError:
        errors.append(f"{where}: {value!r} is not an RFC 3339 time like 2026-01-02T15:04:05Z")
        return None
    if stamp.tzinfo is None:
        errors.append(f"{where}: {value!r} has no time zone (Z or +hh:mm)")
        return None
    return stamp.timestamp()


def postable_silence(body, now: float) -> tuple[str | None, dict]:
    """A posted silence (postableSilence) as (the id it replaces or None, Router.create_silence's body).

    A start in the past is now, as Alertmanager has it; an end in the past, or not after the start, is
    refused with Alertmanager's reasons. BadQuery lists every problem."""
    if not isinstance(body, dict):
        raise BadQuery(["body: a JSON object (a postableSilence) is needed"])
    texts, errors = silence_matchers(body.get("matchers"))
    starts = parse_time(body.get("startsAt"), "startsAt", errors)
    ends = parse_time(body.get("endsAt"), "endsAt", errors)
    author, comment = body.get("createdBy"), body.get("comment")
    if not isinstance(author, str) or not author.strip():
        errors.append("createdBy: missing (who creates the silence)")
    if not isinstance(comment, str) or not comment.strip():
        errors.append("comment: missing (why)")
    replaces = body.get("id") or None
    if replaces is not None and not isinstance(replaces, str):
        errors.append("id: a silence id (a string) is needed")
    if starts is not None and ends is not None:
        if ends <= starts:
            errors.append("endsAt: start time must be before end time")
        elif ends <= now:
            errors.append("endsAt: end time can't be in the past")
    if errors:
        raise BadQuery(errors)
    create = {"matchers": texts, "author": author, "reason": comment, "starts_at": max(starts, now)}
    create["ends_at"] = ends
    return replaces, create
