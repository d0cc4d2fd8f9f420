"""Score alert events against labelled episodes: pure functions over days, no I/O.

The method (also in the README, "Back-testing"):

- An alert is **active** from the day of its first event's window end (the moment the pipeline could
  have raised it) until the day of its RESOLVED event's window end, or to the end of the period if it
  never resolved; at least the day it fired. Each event's severity holds from its day on. "At severity
  s" means active at s or above.
- An episode is **scored** when its country was replayed and its start falls after the first day of the
  period (there was history to warn from). Its **warning span** runs from `horizon` days before its
  start to its end (the end of the period when ongoing).
- **Lead time** of an episode: its start minus the first day in the warning span on which an alert of
  its country was active, in days; positive is before the start. An alert already active when the
  span opens gives the whole horizon. The episode is **warned** when the lead time is positive.
- **Alerts during episodes**: distinct alerts active on a day between an episode's start and end.
- **False alarms**: days on which at least one alert of a country was active (regions counted with
  their country) and which lie in no warning span of that country, per country-year outside the
  warning spans (365.25 such days are one country-year).
- **Country-year precision and recall**: each calendar year of each replayed country (clipped to the
  period) is positive when it overlaps a warning span, predicted when an alert was active in it.
- Lead-time quartiles use the inclusive method (linear between order statistics); one value is its own
  quartiles.
"""

from __future__ import annotations

import bisect
import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tocsin.pipelines.backtest.episodes import Episode
from tocsin.timestamps import epoch_ms

SEVERITIES = ("watch", "warning", "critical")
DAY_MS = 86_400_000


def day_of(ms: int) -> int:
    """Proleptic ordinal of the UTC day holding the instant `ms`."""
    return dt.date(1970, 1, 1).toordinal() + ms // DAY_MS


@dataclass(frozen=True)
class Segment:
    start: int  # first active day (ordinal)
    end: int  # first day no longer active
    severity: int  # index in SEVERITIES


@dataclass(frozen=True)
class Span:
    alert_id: str
    rule_id: str
    country: str
    segments: tuple[Segment, ...]

    def days(self, severity: int = 0) -> Iterable[int]:
        for seg in self.segments:
            if seg.severity >= severity:
                yield from range(seg.start, seg.end)

    def first_day(self, severity: int, lo: int, hi: int) -> int | None:
        """The first active day at `severity` or above in [lo, hi]."""
        for seg in self.segments:
            if seg.severity >= severity and seg.end > lo and seg.start <= hi:
                return max(seg.start, lo)
        return None


@dataclass(frozen=True)
class Period:
    first: dt.date
    last: dt.date  # inclusive

    @property
    def first_day(self) -> int:
        return self.first.toordinal()

    @property
    def last_day(self) -> int:
        return self.last.toordinal()


def spans(alerts: Iterable[dict], period: Period) -> list[Span]:
    """Each alert's active days, from its events (any order)."""
    events: dict[str, list[dict]] = defaultdict(list)
    for alert in alerts:
        events[alert["id"]].append(alert)
    out = []
    stop = period.last_day + 1
    for alert_id, seq in sorted(events.items()):
        seq.sort(key=lambda a: a["sequence"])
        segments = []
        for here, after in zip(seq, [*seq[1:], None], strict=True):
            if here["status"] == "RESOLVED":
                break
            start = day_of(epoch_ms(here["window_end"]))
            end = stop if after is None else day_of(epoch_ms(after["window_end"]))
            end = max(end, start + 1) if not segments else end  # an alert lasts at least the day it fired
            if end > start:
                segments.append(Segment(start, min(end, stop), SEVERITIES.index(here["severity"].lower())))
        segments = [s for s in segments if s.end > s.start]
        if segments:
            out.append(Span(alert_id, seq[0]["rule_id"], seq[0]["country"], tuple(segments)))
    return out


def warning_span(episode: Episode, horizon_days: int, period: Period) -> tuple[int, int]:
    """[first, last] days of an episode's warning span, clipped to the period."""
    lo = episode.start.toordinal() - horizon_days
    hi = episode.end_or(period.last).toordinal()
    return max(lo, period.first_day), min(hi, period.last_day)


def relevant(episodes: Iterable[Episode], countries: Iterable[str], period: Period, horizon: int):
    """Episodes of the replayed countries whose warning span overlaps the period."""
    wanted = set(countries)
    out = []
    for e in episodes:
        if e.country not in wanted:
            continue
        lo, hi = warning_span(e, horizon, period)
        if lo <= hi:
            out.append(e)
    return out


def is_scored(episode: Episode, period: Period) -> bool:
    return period.first < episode.start <= period.last


def score_episode(episode: Episode, country_spans: list[Span], period: Period, horizon: int, severity=0):
    """{warned, lead_time_days, first_alert_id, first_alert_rule, first_alert_at, alerts_during}."""
    lo, hi = warning_span(episode, horizon, period)
    start = episode.start.toordinal()
    first = None
    for span in country_spans:
        day = span.first_day(severity, lo, hi)
        if day is not None and (first is None or (day, span.alert_id) < (first[0], first[1].alert_id)):
            first = (day, span)
    during_lo, during_hi = max(start, lo), hi
    during = sum(1 for s in country_spans if s.first_day(severity, during_lo, during_hi) is not None)
    lead = None if first is None else start - first[0]
    return {
        "warned": lead is not None and lead > 0,
        "lead_time_days": lead,
        "first_alert_id": first[1].alert_id if first else None,
        "first_alert_rule": first[1].rule_id if first else None,
        "first_alert_at": dt.date.fromordinal(first[0]).isoformat() if first else None,
        "alerts_during": during,
    }


def quartiles(values: list[float]) -> dict:
    if not values:
        return {"median": None, "q1": None, "q3": None}
    if len(values) == 1:
        return {"median": float(values[0]), "q1": float(values[0]), "q3": float(values[0])}
    q1, median, q3 = statistics.quantiles(sorted(values), n=4, method="inclusive")
    return {"median": round(median, 2), "q1": round(q1, 2), "q3": round(q3, 2)}


def _years(days: set[int], period: Period) -> set[int]:
    """The calendar years of the period holding at least one of `days` (day ordinals)."""
    ordered = sorted(days)
    years = set()
    for year in range(period.first.year, period.last.year + 1):
        i = bisect.bisect_left(ordered, dt.date(year, 1, 1).toordinal())
        if i < len(ordered) and ordered[i] <= dt.date(year, 12, 31).toordinal():
            years.add(year)
    return years


def _ratio(a: float, b: float) -> float | None:
    return None if b == 0 else round(a / b, 4)


def totals(
    all_spans: list[Span],
    episodes: list[Episode],
    countries: list[str],
    period: Period,
    horizon: int,
    severity: int = 0,
) -> dict:
    """The figures of one set of alerts (a rule, or all rules) at one severity and above."""
    by_country: dict[str, list[Span]] = defaultdict(list)
    for span in all_spans:
        if span.country in countries and any(seg.severity >= severity for seg in span.segments):
            by_country[span.country].append(span)
    relevant_episodes = relevant(episodes, countries, period, horizon)
    scored = [e for e in relevant_episodes if is_scored(e, period)]
    results = [score_episode(e, by_country[e.country], period, horizon, severity) for e in scored]
    leads = [r["lead_time_days"] for r in results if r["warned"]]
    warned = sum(1 for r in results if r["warned"])
    during_ids = set()
    false_days = 0
    quiet_days = 0
    tp = fp = fn = tn = 0
    for country in countries:
        covered: set[int] = set()
        country_episodes = [e for e in relevant_episodes if e.country == country]
        for e in country_episodes:
            lo, hi = warning_span(e, horizon, period)
            covered.update(range(lo, hi + 1))
            start = max(e.start.toordinal(), lo)
            during_ids.update(
                s.alert_id for s in by_country[country] if s.first_day(severity, start, hi) is not None
            )
        active = {
            d
            for s in by_country[country]
            for d in s.days(severity)
            if period.first_day <= d <= period.last_day
        }
        false_days += len(active - covered)
        quiet_days += (period.last_day - period.first_day + 1) - len(covered)
        positive_years = _years(covered, period)
        predicted_years = _years(active, period)
        for year in range(period.first.year, period.last.year + 1):
            positive = year in positive_years
            predicted = year in predicted_years
            tp += positive and predicted
            fp += predicted and not positive
            fn += positive and not predicted
            tn += not positive and not predicted
    country_years = round(quiet_days / 365.25, 4)
    return {
        "alerts": sum(len(v) for v in by_country.values()),
        "episodes": len(scored),
        "warned": warned,
        "recall": _ratio(warned, len(scored)),
        "lead_time_days": quartiles(leads),
        "alerts_during_episodes": len(during_ids),
        "false_alarm_days": false_days,
        "country_years": country_years,
        "false_alarm_days_per_country_year": _ratio(false_days, country_years),
        "country_year": {
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
        },
    }


def totals_by_severity(spans_, episodes, countries, period, horizon) -> dict:
    out = totals(spans_, episodes, countries, period, horizon)
    out["by_severity"] = {
        name: totals(spans_, episodes, countries, period, horizon, severity=i)
        for i, name in enumerate(SEVERITIES)
    }
    return out


def score(
    alerts: list[dict],
    episodes: list[Episode],
    countries: list[str],
    period: Period,
    horizon_days: int,
    rule_ids: Iterable[str] = (),
) -> dict:
    """The `episodes` list and `totals` (overall and per rule, each with its severities) of scores.json."""
    countries = sorted(set(countries))
    all_spans = spans(alerts, period)
    rules = sorted(set(rule_ids) | {s.rule_id for s in all_spans})
    by_country: dict[str, list[Span]] = defaultdict(list)
    for span in all_spans:
        by_country[span.country].append(span)
    listed = []
    for e in relevant(episodes, countries, period, horizon_days):
        row = {**e.as_dict(), "scored": is_scored(e, period)}
        result = score_episode(e, by_country[e.country], period, horizon_days)
        if not row["scored"]:
            result = {**result, "warned": False, "lead_time_days": None}
        row.update(result)
        row["by_rule"] = {
            rule: score_episode(
                e, [s for s in by_country[e.country] if s.rule_id == rule], period, horizon_days
            )["lead_time_days"]
            for rule in rules
        }
        listed.append(row)
    return {
        "episodes": listed,
        "totals": {
            "overall": totals_by_severity(all_spans, episodes, countries, period, horizon_days),
            "rules": {
                rule: totals_by_severity(
                    [s for s in all_spans if s.rule_id == rule], episodes, countries, period, horizon_days
                )
                for rule in rules
            },
        },
    }
