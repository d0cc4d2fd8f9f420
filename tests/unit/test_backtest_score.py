"""Back-test scoring on a hand-built history; every expected figure is worked out in the comments."""

from __future__ import annotations

import datetime as dt

import pytest

from tocsin.pipelines.backtest.episodes import Episode
from tocsin.pipelines.backtest.score import Period, quartiles, score, spans, totals

PERIOD = Period(dt.date(2010, 1, 1), dt.date(2013, 12, 31))  # 365 + 365 + 366 + 365 = 1,461 days
HORIZON = 90


def at(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp() * 1000)


def event(alert_id, rule, country, seq, status, severity, day):
    return {
        "id": alert_id,
        "rule_id": rule,
        "country": country,
        "sequence": seq,
        "status": status,
        "severity": severity,
        "window_end": at(day),
    }


ALERTS = [
    # A1 (r1, AAA): watch from 2 Apr 2013, warning from 2 May, resolved 11 Jun: active 2 Apr - 10 Jun.
    event("A1", "r1", "AAA", 1, "FIRING", "WATCH", "2013-04-02"),
    event("A1", "r1", "AAA", 2, "UPDATED", "WARNING", "2013-05-02"),
    event("A1", "r1", "AAA", 3, "RESOLVED", "WARNING", "2013-06-11"),
    # A2 (r2, AAA): critical 1-10 Mar 2011, long before the episode: 10 false-alarm days.
    event("A2", "r2", "AAA", 2, "RESOLVED", "CRITICAL", "2011-03-11"),
    event("A2", "r2", "AAA", 1, "FIRING", "CRITICAL", "2011-03-01"),
    # A3 (r1, BBB): watch from 1 Jul 2012, never resolved: active to the end of the period.
    event("A3", "r1", "BBB", 1, "FIRING", "WATCH", "2012-07-01"),
]
# AAA's episode starts 1 Jun 2013 and goes on; its warning span opens 90 days before: 3 Mar 2013.
EPISODES = [
    Episode("AAA", "AAA 2013", dt.date(2013, 6, 1), None, "day"),
    Episode("ZZZ", "not replayed", dt.date(2012, 1, 1), None, "day"),
]


@pytest.fixture(scope="module")
def scores():
    return score(ALERTS, EPISODES, ["AAA", "BBB"], PERIOD, HORIZON, rule_ids=["r1", "r2", "r3"])


def test_episode_lead_time_and_alerts_during(scores):
    (episode,) = scores["episodes"]  # ZZZ's country was not replayed
    assert episode["country"] == "AAA" and episode["scored"] is True
    # First active day in the span: 2 Apr (A1). 2 Apr -> 2 May is 30 days, 2 May -> 1 Jun 30 more.
    assert episode["lead_time_days"] == 60 and episode["warned"] is True
    assert episode["first_alert_id"] == "A1" and episode["first_alert_at"] == "2013-04-02"
    assert episode["alerts_during"] == 1  # A1 is still active 1-10 Jun
    assert episode["by_rule"] == {"r1": 60, "r2": None, "r3": None}


def test_overall_totals(scores):
    t = scores["totals"]["overall"]
    assert (t["alerts"], t["episodes"], t["warned"], t["recall"]) == (3, 1, 1, 1.0)
    assert t["lead_time_days"] == {"median": 60.0, "q1": 60.0, "q3": 60.0}
    assert t["alerts_during_episodes"] == 1
    # Outside the span: A2's 10 days in AAA; A3's 184 days of 2012 (1 Jul - 31 Dec) and 365 of 2013 in BBB.
    assert t["false_alarm_days"] == 10 + 184 + 365
    # Exposure: AAA's 1,461 days less its span (3-31 Mar: 29, Apr-Dec: 275 -> 304), plus BBB's 1,461.
    assert t["country_years"] == round((1461 - 304 + 1461) / 365.25, 4) == 7.1677
    assert t["false_alarm_days_per_country_year"] == round(559 / 7.1677, 4)
    # Country-years: AAA 2013 positive and predicted (tp), 2011 predicted only (fp), 2010 and 2012 (tn);
    # BBB 2012 and 2013 predicted (fp), 2010 and 2011 (tn).
    assert t["country_year"] == {"tp": 1, "fp": 3, "fn": 0, "tn": 4, "precision": 0.25, "recall": 1.0}


def test_severity_breakdown(scores):
    warning = scores["totals"]["overall"]["by_severity"]["warning"]
    # At warning and above: A1 (from 2 May, 30 days before the start) and A2; A3 never reached it.
    assert (warning["alerts"], warning["warned"], warning["lead_time_days"]["median"]) == (2, 1, 30.0)
    assert warning["false_alarm_days"] == 10
    assert warning["country_year"] == {"tp": 1, "fp": 1, "fn": 0, "tn": 6, "precision": 0.5, "recall": 1.0}
    critical = scores["totals"]["overall"]["by_severity"]["critical"]
    # Only A2, three years before the span: the episode is missed.
    assert (critical["alerts"], critical["warned"], critical["recall"]) == (1, 0, 0.0)
    assert critical["lead_time_days"] == {"median": None, "q1": None, "q3": None}
    assert critical["country_year"] == {"tp": 0, "fp": 1, "fn": 1, "tn": 6, "precision": 0.0, "recall": 0.0}


def test_per_rule_totals(scores):
    rules = scores["totals"]["rules"]
    assert (rules["r1"]["alerts"], rules["r1"]["warned"], rules["r1"]["false_alarm_days"]) == (2, 1, 549)
    assert (rules["r2"]["alerts"], rules["r2"]["warned"], rules["r2"]["false_alarm_days"]) == (1, 0, 10)
    # A rule that raised nothing is still listed, with zeros and no precision.
    r3 = rules["r3"]
    assert (r3["alerts"], r3["warned"], r3["recall"], r3["country_year"]["precision"]) == (0, 0, 0.0, None)


def test_alert_active_before_the_span_gives_the_whole_horizon():
    long_before = [event("A", "r", "AAA", 1, "FIRING", "WATCH", "2012-01-01")]
    result = score(long_before, EPISODES[:1], ["AAA"], PERIOD, HORIZON)
    assert result["episodes"][0]["lead_time_days"] == HORIZON


def test_alert_after_the_start_is_a_negative_lead_time():
    late = [event("A", "r", "AAA", 1, "FIRING", "WATCH", "2013-06-11")]
    (episode,) = score(late, EPISODES[:1], ["AAA"], PERIOD, HORIZON)["episodes"]
    assert (episode["lead_time_days"], episode["warned"], episode["alerts_during"]) == (-10, False, 1)


def test_episode_starting_with_the_data_is_listed_but_not_scored():
    early = Episode("AAA", "at the start", dt.date(2010, 1, 1), dt.date(2010, 12, 31), "year")
    result = score([], [early], ["AAA"], PERIOD, HORIZON)
    assert result["episodes"][0]["scored"] is False and result["totals"]["overall"]["episodes"] == 0
    # Its span still makes 2010 a positive country-year: a miss.
    assert result["totals"]["overall"]["country_year"]["fn"] == 1


def test_fired_and_resolved_the_same_day_lasts_one_day():
    same_day = [
        event("A", "r", "BBB", 1, "FIRING", "WATCH", "2011-05-05"),
        event("A", "r", "BBB", 2, "RESOLVED", "WATCH", "2011-05-05"),
    ]
    (span,) = spans(same_day, PERIOD)
    assert list(span.days()) == [dt.date(2011, 5, 5).toordinal()]
    assert totals([span], [], ["BBB"], PERIOD, HORIZON)["false_alarm_days"] == 1


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], {"median": None, "q1": None, "q3": None}),
        ([7], {"median": 7.0, "q1": 7.0, "q3": 7.0}),
        # inclusive: q1 at position 0.75 -> 10 + 0.75 * 10; q3 at 2.25 -> 30 + 0.25 * 10
        ([40, 10, 30, 20], {"median": 25.0, "q1": 17.5, "q3": 32.5}),
    ],
)
def test_quartiles(values, expected):
    assert quartiles(values) == expected
