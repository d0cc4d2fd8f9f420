"""The Alertmanager API's queries and posted silences, parsed: what they select, and the exact one-line
error of each kind of bad input (the API's 400)."""

from __future__ import annotations

import pytest

from tocsin.router.alertmanager.filters import (
    AlertQuery,
    BadQuery,
    alert_query,
    as_api_matcher,
    postable_silence,
    silence_matchers,
    silence_query,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def errors_of(parse, *args) -> list[str]:
    with pytest.raises(BadQuery) as raised:
        parse(*args)
    return raised.value.errors


def test_the_defaults_are_alertmanagers_every_state_and_no_filter():
    assert alert_query([]) == AlertQuery()


def test_filters_are_matchers_as_amtool_sends_them_quoted_bare_or_regex():
    q = alert_query(
        [("filter", 'alertname="threshold"'), ("filter", "country=SDN"), ("filter", 'region=~"Dar.*"')]
    )
    assert [str(m) for m in q.matchers] == ['alertname="threshold"', 'country="SDN"', 'region=~"Dar.*"']
    assert all(
        m.matches({"alertname": "threshold", "country": "SDN", "region": "Darfur"}) for m in q.matchers
    )
    assert not q.matchers[2].matches({"region": "North Darfur"})  # anchored, as Alertmanager's


def test_the_state_flags_take_go_openapis_booleans():
    q = alert_query([("active", "false"), ("silenced", "0"), ("inhibited", "no"), ("unprocessed", "True")])
    assert (q.active, q.silenced, q.inhibited, q.unprocessed) == (False, False, False, True)
    assert alert_query([("muted", "false")]).muted is False


def test_the_receiver_is_an_anchored_regex():
    q = alert_query([("receiver", "igad")])
    assert q.receiver.match("igad") and not q.receiver.match("igad-room")
    assert alert_query([("receiver", "")]).receiver is None  # amtool sends an empty one


def test_every_bad_parameter_is_listed_each_on_one_line():
    assert errors_of(
        alert_query,
        [
            ("filter", "country"),
            ("filter", 'a=~"("'),
            ("filter", '{country="SDN"}'),
            ("active", "maybe"),
            ("receiver", "("),
            ("receiver_matchers", 'team="x"'),
        ],
    ) == [
        "filter: bad matcher 'country': expected name=\"value\" with =, !=, =~ or !~",
        "filter: bad matcher 'a=~\"(\"': invalid regex: missing ), unterminated subpattern at position 0",
        'filter: \'{country="SDN"}\' has braces: give one matcher a filter, like alertname="x"',
        "active: 'maybe' is not a boolean (true or false)",
        "receiver: '(' is not a regular expression: missing ), unterminated subpattern at position 0",
        "receiver_matchers: tocsin's receivers have no labels to match; use receiver",
    ]


def test_a_silence_query_has_its_own_flags():
    q = silence_query([("filter", 'country="SDN"'), ("expired", "false")])
    assert (q.active, q.pending, q.expired) == (True, True, False)
    assert errors_of(silence_query, [("pending", "later")]) == [
        "pending: 'later' is not a boolean (true or false)"
    ]


def test_a_posted_silences_matchers_become_tocsins_matcher_texts_and_back():
    texts, errors = silence_matchers(
        [
            {"name": "country", "value": "SDN", "isRegex": False},  # isEqual defaults to true
            {"name": "severity", "value": "watch", "isRegex": False, "isEqual": False},
            {"name": "region", "value": 'Dar.*|"North"', "isRegex": True, "isEqual": True},
            {"name": "rule", "value": r"t\d+", "isRegex": True, "isEqual": False},
        ]
    )
    assert errors == []
    assert texts == ['country="SDN"', 'severity!="watch"', 'region=~"Dar.*|\\"North\\""', 'rule!~"t\\d+"']
    assert [as_api_matcher(t) for t in texts] == [
        {"name": "country", "value": "SDN", "isRegex": False, "isEqual": True},
        {"name": "severity", "value": "watch", "isRegex": False, "isEqual": False},
        {"name": "region", "value": 'Dar.*|"North"', "isRegex": True, "isEqual": True},
        {"name": "rule", "value": r"t\d+", "isRegex": True, "isEqual": False},
    ]


def test_bad_silence_matchers_each_say_what_is_wrong():
    assert silence_matchers([]) == (
        [],
        ["matchers: at least one is needed (a silence of everything is not allowed)"],
    )
    texts, errors = silence_matchers(
        [
            {"name": "a b", "value": 1, "isRegex": "no"},
            "country=SDN",
            {"name": "c", "value": "v\\", "isRegex": False},
            {"name": "c", "value": "(", "isRegex": True},
            {"name": "c", "value": "x", "isRegex": False, "isEqual": None},
        ]
    )
    assert texts == []
    assert errors == [
        "matchers.0.name: 'a b' is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)",
        "matchers.0.value: a string is needed",
        "matchers.0.isRegex: true or false is needed",
        "matchers.1: an object {name, value, isRegex, isEqual} is needed",
        "matchers.2.value: 'v\\\\' ends with a backslash, which a matcher cannot hold",
        "matchers.3.value: '(' is not a regular expression: missing ), unterminated subpattern at position 0",
        "matchers.4.isEqual: true or false is needed",
    ]


def silence(**overrides) -> dict:
    body = {
        "matchers": [{"name": "country", "value": "SDN", "isRegex": False, "isEqual": True}],
        "startsAt": "2027-01-15T08:00:00Z",
        "endsAt": "2027-01-15T10:00:00.123456789Z",  # Go writes nanoseconds
        "createdBy": "jo",
        "comment": "talks under way",
    }
    return {**body, **overrides}


def test_a_posted_silence_is_router_create_silences_body():
    assert postable_silence(silence(), NOW) == (
        None,
        {
            "matchers": ['country="SDN"'],
            "author": "jo",
            "reason": "talks under way",
            "starts_at": NOW,
            "ends_at": NOW + 7200.123456,
        },
    )
    # A start in the past is now, as Alertmanager has it; an id is the silence it replaces.
    replaces, body = postable_silence(silence(startsAt="2020-01-01T00:00:00+02:00", id="s-1"), NOW)
    assert (replaces, body["starts_at"]) == ("s-1", NOW)


def test_a_bad_posted_silence_lists_every_problem():
    assert errors_of(postable_silence, [], NOW) == ["body: a JSON object (a postableSilence) is needed"]
    assert errors_of(
        postable_silence,
        silence(
            matchers=None,
            startsAt="yesterday",
            endsAt="2027-01-16T00:00:00",
            createdBy=" ",
            comment=None,
            id=3,
        ),
        NOW,
    ) == [
        "matchers: at least one is needed (a silence of everything is not allowed)",
        "startsAt: 'yesterday' is not an RFC 3339 time like 2026-01-02T15:04:05Z",
        "endsAt: '2027-01-16T00:00:00' has no time zone (Z or +hh:mm)",
        "createdBy: missing (who creates the silence)",
        "comment: missing (why)",
        "id: a silence id (a string) is needed",
    ]
    # Alertmanager's own reasons for the times.
    late = silence(startsAt="2027-01-15T12:00:00Z", endsAt="2027-01-15T11:00:00Z")
    assert errors_of(postable_silence, late, NOW) == ["endsAt: start time must be before end time"]
    past = silence(startsAt="2027-01-01T00:00:00Z", endsAt="2027-01-02T00:00:00Z")
    assert errors_of(postable_silence, past, NOW) == ["endsAt: end time can't be in the past"]
    assert errors_of(postable_silence, silence(startsAt=17), NOW) == [
        "startsAt: an RFC 3339 time like 2026-01-02T15:04:05Z is needed"
    ]
