"""The back-test report: one self-contained HTML page of what a replay of history scored.

`write_report(directory, result)` writes `directory/report.html` from the dict the back-test builds
(its `scores`, as in scores.json, plus the signal `series`, the `alerts`, the `episodes` and the
threshold `sweeps`). The page shows what was replayed and how it was scored, the totals per rule and per
severity, the episodes and whether each was warned of, then per country a plot of its signal series
with its alerts and episodes (and a table of its alerts), and per swept rule its recall against false
alarms.

The page works offline and on its own: no scripts, no fonts, no images to fetch (a content security
policy forbids them). Plots are matplotlib SVG inlined in the page, with their text drawn as paths so
that they look the same without any font installed. Everything shown comes from the input and is
HTML-escaped; the same input gives a byte-identical file (fixed SVG hash salt, no dates in metadata).
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pycountry
from matplotlib import dates as mdates
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from tocsin.plots import RC as PLOT_RC
from tocsin.plots import figure, inline_svg

SEVERITIES = ("watch", "warning", "critical")
STATUSES = ("FIRING", "UPDATED", "RESOLVED")
MAX_INDICATORS = 6  # lines per country plot; the rest are named in the caption
MAX_RULE_ROWS = 6  # alert rows per rule in a country plot; more rules share one row
MAX_ALERT_ROWS = 200  # alerts listed per country
MAX_PLOT_LABEL = 40  # characters of an episode name written on a plot
MAX_EPISODE_LANES = 8  # rows of episode bars in a country plot; more overlapping episodes share them
LABEL_CHAR_FRACTION = 0.0085  # of a country plot's width, per character of an 8 pt label (estimated)

# Okabe-Ito colours (distinguishable with the common colour-vision deficiencies), without the yellow,
# which is unreadable on white; line styles vary too, so that colour is never the only cue.
LINE_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000")
LINE_STYLES = ("-", "-", "-", "--", "--", ":")
STATUS_STYLE = {  # marker, colour, size, vertical offset within the rule's row, legend label
    "FIRING": ("^", "#D55E00", 8, 0.24, "alert fired"),
    "UPDATED": ("o", "#444444", 4, 0.0, "alert updated"),
    "RESOLVED": ("v", "#009E73", 7, -0.24, "alert resolved"),
}
OTHER_STATUS_STYLE = ("s", "#555555", 5, 0.0, "alert, other status")
EPISODE_COLOUR = "#7F7F7F"

MPL_RC = {**PLOT_RC, "svg.hashsalt": "tocsin-backtest-report"}  # stable ids: the same input, the same bytes

# Nothing to fetch and nothing to run, even if a bug let markup from the input through.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1080px; padding: 1.5rem 1.25rem 3rem; color: #1a1a1a; background: #fff;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "DejaVu Sans", Arial,
  sans-serif; }
h1 { font-size: 1.6rem; margin: 0 0 .25rem; }
h2 { font-size: 1.25rem; margin: 2.25rem 0 .6rem; padding-bottom: .25rem; border-bottom: 2px solid #ddd; }
h3 { font-size: 1.08rem; margin: 1.75rem 0 .4rem; }
p { margin: .4rem 0 .8rem; }
.lede { color: #444; margin-bottom: 1rem; }
nav { font-size: .92rem; margin: .5rem 0 1rem; }
nav a { margin-right: 1rem; }
a { color: #0b5cad; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1.25rem; margin: .5rem 0 1rem; }
dl.facts dt { font-weight: 600; color: #333; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.note { background: #f6f7f9; border-left: 4px solid #9aa5b1; padding: .6rem .9rem; }
.note p { margin: .3rem 0; }
.table-wrap { overflow-x: auto; margin: .4rem 0 1rem; }
table { border-collapse: collapse; font-size: .88rem; width: 100%; }
caption { text-align: left; color: #444; font-size: .85rem; padding: .2rem 0 .4rem; caption-side: top; }
th, td { padding: .3rem .5rem; border-bottom: 1px solid #e2e2e2; text-align: left; vertical-align: top; }
thead th { background: #f0f2f4; border-bottom: 2px solid #c8ccd0; font-weight: 600; vertical-align: bottom; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num, td.nowrap, tbody th { white-space: nowrap; }
thead th { font-size: .82rem; }
table.compact { width: auto; min-width: 60%; }
tr.all td, tr.all th { font-weight: 700; background: #f8f8f2; }
tbody.group { border-top: 2px solid #c8ccd0; }
tr.rule th { background: #f0f2f4; padding-top: .45rem; }
th.severity { font-weight: 400; padding-left: 1.2rem; }
tr.all th.severity { font-weight: 700; }
td.episode { min-width: 14rem; }
.jump { font-size: .88rem; line-height: 1.9; }
.jump a { margin-right: .6rem; white-space: nowrap; }
td.summary { min-width: 18rem; }
.yes { color: #0a6b3d; font-weight: 600; }
.no { color: #a33a00; font-weight: 600; }
.muted { color: #666; }
figure { margin: .5rem 0 1rem; }
figure svg { display: block; width: 100%; max-width: 1000px; height: auto; }
figcaption { color: #444; font-size: .85rem; margin-top: .3rem; }
details summary { cursor: pointer; color: #0b5cad; margin: .3rem 0; }
footer { margin-top: 3rem; color: #666; font-size: .8rem; }
"""


# ---------------------------------------------------------------- formatting for people


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def fmt_int(value: Any) -> str:
    x = _number(value)
    return "n/a" if x is None else f"{round(x):,}"


def fmt_num(value: Any, decimals: int = 2) -> str:
    """1,234 for whole numbers, 12.35 otherwise; n/a for None."""
    x = _number(value)
    if x is None:
        return "n/a"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.{decimals}f}"


def fmt_rate(value: Any) -> str:
    """A rate with two decimals: 5.048 -> 5.05, 0 -> 0.00."""
    x = _number(value)
    return "n/a" if x is None else f"{x:,.2f}"


def fmt_pct(value: Any) -> str:
    """A share in 0-1 as a percentage: 0.5 -> 50.0%."""
    x = _number(value)
    return "n/a" if x is None else f"{x * 100:.1f}%"


def fmt_days(value: Any) -> str:
    x = _number(value)
    return "n/a" if x is None else fmt_num(x, 1)


def fmt_seconds(value: Any) -> str:
    x = _number(value)
    if x is None:
        return "n/a"
    if x < 120:
        return f"{x:.1f} s"
    minutes, seconds = divmod(round(x), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def fmt_date(value: Any) -> str:
    """A date for a table: epoch milliseconds or ISO text, as YYYY-MM-DD; n/a for None."""
    day = parse_day(value)
    if day is not None:
        return day.isoformat()
    return "n/a" if value is None or value == "" else str(value)


def parse_day(value: Any) -> date | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float) and _number(value) is not None:
        try:
            return datetime.fromtimestamp(value / 1000, UTC).date()
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}", value):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def yes_no(value: Any) -> str:
    if value is None:
        return '<span class="muted">n/a</span>'
    return '<span class="yes">yes</span>' if value else '<span class="no">no</span>'


def country_name(code: str) -> str:
    try:
        found = pycountry.countries.get(alpha_3=code.upper()) if len(code) == 3 else None
    except (KeyError, LookupError):
        found = None
    name = getattr(found, "common_name", None) or getattr(found, "name", None)
    return f"{name} ({code})" if name else code


def _mpl_text(value: Any, limit: int | None = None) -> str:
    """Text for matplotlib: shortened, with '$' kept literal (matplotlib reads $...$ as maths)."""
    text = " ".join(str(value).split())
    if limit and len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text.replace("$", r"\$")


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


# ---------------------------------------------------------------- SVG from matplotlib


def _ms_to_datetime64(ms: list[float]):
    return np.array([int(x) for x in ms], dtype="datetime64[ms]")


def _day64(day: date):
    return np.datetime64(day.isoformat(), "ms")


def _series_points(points: Any) -> tuple[list[float], list[float]]:
    pairs = []
    for point in _list(points):
        if isinstance(point, list | tuple) and len(point) >= 2:
            t, v = _number(point[0]), _number(point[1])
            if t is not None and v is not None:
                pairs.append((t, v))
    pairs.sort()
    return [t for t, _ in pairs], [v for _, v in pairs]


def _top_indicators(indicators: dict) -> tuple[list[tuple[str, list, list]], int]:
    """The MAX_INDICATORS indicators with the largest totals (then by name), and how many were left out."""
    ranked = []
    for name, points in indicators.items():
        times, values = _series_points(points)
        if times:
            ranked.append((-sum(abs(v) for v in values), str(name), times, values))
    ranked.sort(key=lambda r: (r[0], r[1]))
    shown = [(name, times, values) for _, name, times, values in ranked[:MAX_INDICATORS]]
    return shown, len(ranked) - len(shown)


def _merged(intervals: list[tuple[date, date]]) -> list[tuple[date, date]]:
    out: list[tuple[date, date]] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _episode_lanes(spans: list[dict], left: date, right: date) -> int:
    """Give each episode a lane (span["lane"]) in which neither its bars nor its name overlap another's;
    place its name (span["label_at"], span["label_ha"]). Returns the number of lanes."""
    width = max((right - left).days, 1)
    day_per_char = width * LABEL_CHAR_FRACTION
    busy: list[date] = []  # per lane: the last day taken
    for span in spans:
        text_days = timedelta(days=len(span["label"]) * day_per_char)
        at = max(span["start"], left)
        if at + text_days <= right:
            span["label_at"], span["label_ha"] = at, "left"
            label_lo, label_hi = at, at + text_days
        else:  # near the right edge the name ends there instead, so it is not cut off
            span["label_at"], span["label_ha"] = right, "right"
            label_lo, label_hi = right - text_days, right
        lo = min(span["warn_from"], label_lo)
        hi = max(span["end"], label_hi)
        free = [lane for lane, taken in enumerate(busy) if taken < lo]
        if free:
            lane = free[0]
        elif len(busy) < MAX_EPISODE_LANES:
            lane = len(busy)
            busy.append(hi)
        else:  # crowded: the lane that frees up first
            lane = min(range(len(busy)), key=lambda i: busy[i])
        busy[lane] = max(busy[lane], hi)
        span["lane"] = lane
    return len(busy)


def country_plot(
    prefix: str,
    country: str,
    series: dict,
    alerts: list[dict],
    episodes: list[dict],
    period: tuple[date | None, date | None],
    horizon_days: float | None,
) -> tuple[str, str] | None:
    """The country's signal series, alert marks and episodes as (svg, caption); None if it has none.

    Three panels share the time axis: the signal series with the episodes shaded, one row of alert marks
    per rule, and one bar per episode (with the warning horizon before it) in as many lanes as overlapping
    episodes need.
    """

    shown, left_out = _top_indicators(_dict(series.get("indicators")))
    alerts = [a for a in alerts if _number(a.get("window_end")) is not None]
    seen = [parse_day(t) for _, times, _ in shown for t in (times[0], times[-1])]
    seen = [d for d in seen + [parse_day(a["window_end"]) for a in alerts] if d]
    spans = []
    for episode in episodes:
        start = parse_day(episode.get("start"))
        if start is None:
            continue
        end = parse_day(episode.get("end"))
        ongoing = end is None
        if ongoing:  # shaded to the end of the period
            end = period[1] or max([start, *seen])
        label = _mpl_text(episode.get("name") or episode.get("code") or "episode", MAX_PLOT_LABEL)
        spans.append(
            {
                "start": start,
                "end": max(end, start + timedelta(days=1)),
                "warn_from": start - timedelta(days=horizon_days or 0),
                "label": label + (" (ongoing)" if ongoing else ""),
            }
        )
    if not shown and not alerts and not spans:
        return None
    seen += [d for span in spans for d in (span["start"], span["end"])]
    left, right = period[0] or min(seen), period[1] or max(seen)
    spans.sort(key=lambda s: (s["start"], s["end"], s["label"]))
    lanes = _episode_lanes(spans, left, right) if spans else 0

    rules = sorted({str(a.get("rule_id") or "?") for a in alerts})
    per_rule = len(rules) <= MAX_RULE_ROWS
    rows = rules if per_rule else ["all rules"]
    heights = [4.0, 0.45 + 0.4 * len(rows)] + ([0.3 + 0.3 * lanes] if lanes else [])
    fig = figure(figsize=(10, sum(heights) + 0.9))
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights)
    ax = fig.add_subplot(grid[0])
    strip = fig.add_subplot(grid[1], sharex=ax)
    lane_ax = fig.add_subplot(grid[2], sharex=ax) if lanes else None
    handles: list = []

    # Episodes: shaded behind the series and the alert marks, and one bar each in the lanes.
    for start, end in _merged([(s["start"], s["end"]) for s in spans]):
        for axis in (ax, strip):
            axis.axvspan(
                _day64(start), _day64(end), facecolor=EPISODE_COLOUR, alpha=0.16, linewidth=0, zorder=0
            )
    for span in spans:
        y = lanes - 1 - span["lane"]
        if horizon_days:
            lane_ax.barh(
                y,
                _day64(span["start"]) - _day64(span["warn_from"]),
                left=_day64(span["warn_from"]),
                height=0.5,
                facecolor="none",
                edgecolor="#AAAAAA",
                hatch="///",
                linewidth=0,
                zorder=1,
            )
        lane_ax.barh(
            y,
            _day64(span["end"]) - _day64(span["start"]),
            left=_day64(span["start"]),
            height=0.72,
            facecolor=EPISODE_COLOUR,
            alpha=0.45,
            linewidth=0,
            zorder=2,
        )
        lane_ax.text(
            _day64(span["label_at"]),
            y,
            span["label"],
            ha=span["label_ha"],
            va="center",
            fontsize=8,
            color="#111111",
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 1.2},
            clip_on=True,
            zorder=3,
        )
    if spans:
        handles.append(Patch(facecolor=EPISODE_COLOUR, alpha=0.45, label="episode"))
        if horizon_days:
            label = f"{fmt_num(horizon_days, 0)} days before an episode"
            handles.append(Patch(facecolor="none", edgecolor="#AAAAAA", hatch="///", label=label))
        lane_ax.set_ylim(-0.6, lanes - 0.4)
        lane_ax.set_yticks([(lanes - 1) / 2], ["episodes"])
        lane_ax.tick_params(axis="y", length=0, labelsize=8.5)
        lane_ax.grid(False, axis="y")

    # Signal series.
    peaks = []
    for i, (name, times, values) in enumerate(shown):
        (line,) = ax.plot(
            _ms_to_datetime64(times),
            values,
            color=LINE_COLOURS[i % len(LINE_COLOURS)],
            linestyle=LINE_STYLES[i % len(LINE_STYLES)],
            linewidth=1.3 if len(times) < 1000 else 0.9,  # thinner where years of days are drawn
            marker="o" if len(times) < 60 else None,  # a few windows would hardly show as a line
            markersize=3,
            label=_mpl_text(name, 48),
            zorder=2,
        )
        handles.append(line)
        peaks.append(max(abs(v) for v in values))
    if shown:
        if min(peaks) > 0 and max(peaks) / min(peaks) > 50:
            ax.set_yscale("symlog", linthresh=1)  # one loud indicator would flatten all the others
            ax.set_ylabel("signal value (symmetric log scale)")
            ax.margins(y=0.08)
        else:
            ax.set_ylabel("signal value")
            low = min(min(v) for _, _, v in shown)
            high = max(max(v) for _, _, v in shown)
            ax.set_ylim(min(low, 0) * 1.06, (high if high > 0 else 1) * 1.06)
    else:
        ax.text(
            0.5,
            0.5,
            "no signal series for this country",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="#666666",
        )
        ax.set_yticks([])

    # Alert marks, one row per rule (or one for all), fired above, resolved below, updates between.
    counts = Counter()
    by_status: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for alert in alerts:
        status = str(alert.get("status") or "?").upper()
        status = status if status in STATUS_STYLE else "other"
        counts[status] += 1
        row = rules.index(str(alert.get("rule_id") or "?")) if per_rule else 0
        style = STATUS_STYLE.get(status, OTHER_STATUS_STYLE)
        by_status[status].append((alert["window_end"], len(rows) - 1 - row + style[3]))
    for status in (*STATUSES, "other"):
        if not by_status.get(status):
            continue
        marker, colour, size, _, label = STATUS_STYLE.get(status, OTHER_STATUS_STYLE)
        style = {
            "linestyle": "none",
            "marker": marker,
            "markersize": size,
            "color": colour,
            "markeredgecolor": colour if status == "UPDATED" else "#222222",
            "markeredgewidth": 0.5,
        }
        xs = _ms_to_datetime64([x for x, _ in by_status[status]])
        strip.plot(xs, [y for _, y in by_status[status]], zorder=3, **style)
        handles.append(Line2D([], [], label=label, **style))
    strip.set_ylim(-0.6, len(rows) - 0.4)
    strip.set_yticks(range(len(rows)), [_mpl_text(r, 32) for r in reversed(rows)])
    strip.tick_params(axis="y", length=0, labelsize=8.5)
    strip.grid(False, axis="y")
    if not alerts:
        strip.set_yticks([])
        strip.text(
            0.5, 0.5, "no alerts", transform=strip.transAxes, ha="center", va="center", color="#666666"
        )

    if right > left:
        ax.set_xlim(_day64(left), _day64(right))
    bottom = lane_ax or strip
    locator = mdates.AutoDateLocator(minticks=5, maxticks=12)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, show_offset=False))
    for axis in (ax, strip, lane_ax):
        if axis is not None and axis is not bottom:
            axis.tick_params(axis="x", labelbottom=False)
    if lane_ax is not None:
        lane_ax.spines["left"].set_visible(False)
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(4, len(handles)), frameon=False)

    svg = inline_svg(fig, prefix, f"Signals, alerts and episodes for {country_name(country)}")
    parts = []
    if shown:
        window = series.get("window")
        total = len(shown) + left_out
        which = (
            f"the top {len(shown)} of {total} indicators by total"
            if left_out
            else _plural(total, "indicator")
        )
        parts.append(f"Signal series{f' ({esc(window)} windows)' if window else ''} of {which}")
    else:
        parts.append("No signal series")
    status_text = ", ".join(
        f"{fmt_int(counts[s])} {STATUS_STYLE[s][4].split()[1]}" for s in STATUSES if counts[s]
    )
    if counts["other"]:
        status_text += f", {fmt_int(counts['other'])} other"
    parts.append(f"{_plural(len(alerts), 'alert record')} ({status_text})" if alerts else "no alerts")
    if not per_rule:
        parts.append(f"the {len(rules)} rules share one row of alert marks")
    parts.append(_plural(len(spans), "episode") if spans else "no episodes")
    return svg, "; ".join(parts) + "."


def _plural(n: int, noun: str, nouns: str = "") -> str:
    return f"{fmt_int(n)} {noun if n == 1 else nouns or noun + 's'}"


def sweep_plot(prefix: str, sweep: dict) -> str | None:
    """Recall against false alarms per country-year, one point per threshold value."""
    points = []
    for point in _list(sweep.get("points")):
        point = _dict(point)
        x, y = _number(point.get("false_alarms_per_country_year")), _number(point.get("recall"))
        if x is not None and y is not None:
            points.append((x, y, point.get("value")))
    if not points:
        return None
    rule, parameter = sweep.get("rule") or "rule", sweep.get("parameter") or "threshold"
    fig = figure(figsize=(9, 4.2))
    ax = fig.add_subplot()
    ax.plot(
        [p[0] for p in points],
        [p[1] for p in points],
        color="#0072B2",
        linewidth=1.4,
        marker="o",
        markersize=6,
        zorder=3,
    )
    xmax = max(max(p[0] for p in points) * 1.12, 1)
    ax.set_xlim(-0.03 * xmax, xmax)
    ax.set_ylim(-0.04, 1.1)
    # One label per distinct point (thresholds that score the same share it), moved off its neighbours'.
    labels: dict[tuple[float, float], list[str]] = {}
    for x, y, value in points:
        text = fmt_num(value) if _number(value) is not None else _mpl_text(value, 16)
        labels.setdefault((x, y), []).append(text)
    placed: list[tuple[float, float]] = []
    for (x, y), texts in labels.items():
        fx, fy = x / xmax, y / 1.1
        for dx, dy in ((6, 6), (6, -14), (-8, 6), (-8, -14)):
            spot = (fx + dx / 500, fy + dy / 300)
            if all(abs(spot[0] - px) > 0.06 or abs(spot[1] - py) > 0.05 for px, py in placed):
                break
        placed.append(spot)
        ax.annotate(
            ", ".join(texts),
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="left" if dx > 0 else "right",
            fontsize=9,
            color="#222222",
        )
    ax.yaxis.set_major_formatter(lambda v, _: f"{v * 100:.0f}%")
    ax.set_xlabel("false alarms per country-year")
    ax.set_ylabel("recall (share of episodes warned)")
    return inline_svg(fig, prefix, f"Recall against false alarms for {rule} by {parameter}")


# ---------------------------------------------------------------- HTML sections


def _table(
    headers: list[tuple[str, bool]], rows: list[str], caption: str = "", table_id: str = "", cls: str = ""
) -> str:
    head = _header_cells(headers)
    cap = f"<caption>{caption}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table{_attrs(id=table_id, **{"class": cls})}>{cap}'
        f"<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _attrs(**attributes: str) -> str:
    """' class="num" title="..."' for the attributes that have a value (escaped)."""
    return "".join(f' {name}="{esc(value)}"' for name, value in attributes.items() if value)


def _header_cells(headers: list[tuple[str, bool]]) -> str:
    return "".join(
        f'<th scope="col"{_attrs(**{"class": "num" if num else ""})}>{text}</th>' for text, num in headers
    )


def _td(text: str, num: bool = False, cls: str = "", title: str = "") -> str:
    classes = " ".join(c for c in ("num" if num else "", cls) if c)
    return f"<td{_attrs(**{'class': classes, 'title': title})}>{text}</td>"


def _lead(lead: Any) -> str:
    lead = _dict(lead)
    if _number(lead.get("median")) is None:
        return "n/a"
    if _number(lead.get("q1")) is None and _number(lead.get("q3")) is None:
        return fmt_days(lead.get("median"))
    return f"{fmt_days(lead.get('median'))} ({fmt_days(lead.get('q1'))}\u2013{fmt_days(lead.get('q3'))})"


ALL = ' class="all"'
TOTAL_HEADERS = [
    ("Alerts", True),
    ("Warned / scored episodes", True),
    ("Recall", True),
    ("Lead time, days: median (q1\u2013q3)", True),
    ("Alerts during episodes", True),
    ("False-alarm days / country-year", True),
    ("Country-year precision", True),
    ("Country-year recall", True),
]


def _total_cells(totals: Any) -> str:
    t = _dict(totals)
    cy = _dict(t.get("country_year"))
    counts = ", ".join(f"{k} {fmt_int(cy.get(k))}" for k in ("tp", "fp", "fn", "tn"))
    fa_days, country_years = fmt_int(t.get("false_alarm_days")), fmt_num(t.get("country_years"), 1)
    fa_title = f"{fa_days} false-alarm days over {country_years} country-years"
    return "".join(
        [
            _td(fmt_int(t.get("alerts")), True),
            _td(f"{fmt_int(t.get('warned'))} / {fmt_int(t.get('episodes'))}", True),
            _td(fmt_pct(t.get("recall")), True),
            _td(_lead(t.get("lead_time_days")), True),
            _td(fmt_int(t.get("alerts_during_episodes")), True),
            _td(fmt_rate(t.get("false_alarm_days_per_country_year")), True, title=fa_title),
            _td(fmt_pct(cy.get("precision")), True, title=f"country-years: {counts}"),
            _td(fmt_pct(cy.get("recall")), True, title=f"country-years: {counts}"),
        ]
    )


def _totals_rows(scores: dict) -> list[tuple[str, dict, bool]]:
    totals = _dict(scores.get("totals"))
    rules = _dict(totals.get("rules"))
    rows = [(str(rule), _dict(rules[rule]), False) for rule in sorted(rules, key=str)]
    if totals.get("overall") is not None or not rows:
        rows.append(("All rules", _dict(totals.get("overall")), True))
    return rows


def totals_section(scores: dict) -> str:
    rows = _totals_rows(scores)
    body = [
        f'<tr{ALL if is_all else ""}><th scope="row">{esc(name)}</th>{_total_cells(t)}</tr>'
        for name, t, is_all in rows
    ]
    table = _table(
        [("Rule", False), *TOTAL_HEADERS],
        body,
        "One row per rule and one for all rules together. "
        "Hover a false-alarm or country-year cell for its counts.",
        "totals",
    )
    groups = []
    for name, t, is_all in [r for r in rows if r[2]] + [r for r in rows if not r[2]]:
        by_severity = _dict(t.get("by_severity"))
        # The rule heads its three rows, across the table: the severities keep the first column narrow.
        cells = [
            f'<tr class="rule"><th scope="rowgroup" colspan="{1 + len(TOTAL_HEADERS)}">{esc(name)}</th></tr>'
        ]
        for severity in SEVERITIES:
            cells.append(
                f'<tr{ALL if is_all else ""}><th scope="row" class="severity">{severity}</th>'
                f"{_total_cells(by_severity.get(severity))}</tr>"
            )
        groups.append(f'<tbody class="group">{"".join(cells)}</tbody>')
    head = _header_cells([("Severity", False), *TOTAL_HEADERS])
    severity_table = (
        '<div class="table-wrap"><table id="by-severity"><caption>The same measures counting only the '
        "alerts of each severity.</caption>"
        f"<thead><tr>{head}</tr></thead>{''.join(groups)}</table></div>"
    )
    return (
        f'<section id="totals-section"><h2>Totals</h2>{table}'
        f'<h3 id="severity-section">By severity</h3>{severity_table}</section>'
    )


def episodes_section(episodes: list[dict]) -> str:
    rows = []
    for episode in episodes:
        e = _dict(episode)
        scored = e.get("scored")
        warned = (
            yes_no(e.get("warned")) if scored is not False else '<span class="muted">not&nbsp;scored</span>'
        )
        lead = _number(e.get("lead_time_days"))
        code = f' <span class="muted">({esc(e["code"])})</span>' if e.get("code") else ""
        first = [esc(e["first_alert_rule"])] if e.get("first_alert_rule") else []
        if e.get("first_alert_at") is not None:
            first.append(f'<span class="muted">{esc(fmt_date(e["first_alert_at"]))}</span>')
        rows.append(
            "<tr>"
            + "".join(
                [
                    _td(esc(e.get("country") or "n/a")),
                    _td(esc(e.get("name") or "n/a") + code, cls="episode"),
                    _td(esc(fmt_date(e.get("start"))), cls="nowrap"),
                    _td("ongoing" if e.get("end") is None else esc(fmt_date(e.get("end"))), cls="nowrap"),
                    _td(esc(e.get("resolution") or "n/a")),
                    _td(warned),
                    _td(
                        "n/a"
                        if lead is None
                        else f"{lead:+,.0f}"
                        if float(lead).is_integer()
                        else f"{lead:+,.1f}",
                        True,
                    ),
                    _td("<br>".join(first) or "n/a", cls="nowrap"),
                    _td(fmt_int(e.get("alerts_during")), True),
                ]
            )
            + "</tr>"
        )
    headers = [
        ("Country", False),
        ("Episode", False),
        ("Start", False),
        ("End", False),
        ("Resolution", False),
        ("Warned", False),
        ("Lead time, days", True),
        ("First alert: rule, date", False),
        ("Alerts during", True),
    ]
    if not rows:
        return '<section id="episodes-section"><h2>Episodes</h2><p class="muted">No episodes.</p></section>'
    return (
        '<section id="episodes-section"><h2>Episodes</h2>'
        + _table(
            headers,
            rows,
            "Lead time is the number of days from the first alert to the episode's "
            "start: positive means the alert came before the start.",
            "episodes",
        )
        + "</section>"
    )


def _alert_lifecycles(alerts: list[dict]) -> list[dict]:
    """One entry per alert id: when it fired, its highest severity, updates, and when it resolved."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for alert in alerts:
        grouped[str(alert.get("id") or f"{alert.get('rule_id')}@{alert.get('window_end')}")].append(alert)
    lifecycles = []
    for ident, records in grouped.items():
        records.sort(
            key=lambda a: (
                _number(a.get("window_end")) or 0,
                STATUSES.index(a["status"]) if a.get("status") in STATUSES else 3,
            )
        )
        fired = next((a for a in records if a.get("status") == "FIRING"), records[0])
        resolved = next((a for a in records if a.get("status") == "RESOLVED"), None)
        severities = [str(a.get("severity") or "").lower() for a in records]
        ranked = [s for s in SEVERITIES if s in severities]
        lifecycles.append(
            {
                "id": ident,
                "fired": fired.get("window_end"),
                "rule": fired.get("rule_id"),
                "region": fired.get("region"),
                "severity": ranked[-1] if ranked else (severities[0] or "n/a"),
                "updates": sum(1 for a in records if a.get("status") == "UPDATED"),
                "resolved": resolved.get("window_end") if resolved else None,
                "summary": fired.get("summary"),
            }
        )
    lifecycles.sort(key=lambda a: (_number(a["fired"]) or 0, str(a["rule"]), a["id"]))
    return lifecycles


def alerts_table(alerts: list[dict], table_id: str) -> str:
    lifecycles = _alert_lifecycles(alerts)
    if not lifecycles:
        return ""
    regions = any(a["region"] for a in lifecycles)
    rows = []
    for a in lifecycles[:MAX_ALERT_ROWS]:
        rows.append(
            "<tr>"
            + "".join(
                [
                    _td(esc(fmt_date(a["fired"])), True),
                    _td(esc(a["rule"] or "n/a"), cls="nowrap"),
                    *([_td(esc(a["region"] or ""))] if regions else []),
                    _td(esc(a["severity"])),
                    _td(fmt_int(a["updates"]), True),
                    _td(esc(fmt_date(a["resolved"])) if a["resolved"] is not None else "open", True),
                    _td(esc(a["summary"] or ""), cls="summary"),
                ]
            )
            + "</tr>"
        )
    headers = [
        ("Fired", True),
        ("Rule", False),
        *([("Region", False)] if regions else []),
        ("Highest severity", False),
        ("Updates", True),
        ("Resolved", True),
        ("Summary when fired", False),
    ]
    more = len(lifecycles) - MAX_ALERT_ROWS
    caption = (
        f"{fmt_int(len(lifecycles))} alerts in the order they fired; dates are the end of the window that "
        "fired, or resolved, the alert"
        + (f". The first {MAX_ALERT_ROWS} are listed, {fmt_int(more)} more are not." if more > 0 else ".")
    )
    return (
        f"<details><summary>Alerts ({fmt_int(len(lifecycles))})</summary>"
        + _table(headers, rows, caption, table_id)
        + "</details>"
    )


def countries_section(result: dict, scores: dict, period, horizon_days) -> str:
    method = _dict(scores.get("method"))
    series = _dict(result.get("series"))
    alerts = [a for a in _list(result.get("alerts")) if isinstance(a, dict)]
    episodes = [e for e in _list(result.get("episodes") or scores.get("episodes")) if isinstance(e, dict)]
    named = [str(c) for c in _list(method.get("countries"))]
    seen = {*series, *(a.get("country") for a in alerts), *(e.get("country") for e in episodes)}
    countries = list(dict.fromkeys(named + sorted(str(c) for c in seen if c)))
    if not countries:
        return (
            '<section id="countries-section"><h2>Countries</h2><p class="muted">No countries.</p></section>'
        )
    parts = ['<section id="countries-section"><h2>Countries</h2>']
    if len(countries) > 1:
        links = " ".join(
            f'<a href="#country-{esc(c)}" title="{esc(country_name(c))}">{esc(c)}</a>' for c in countries
        )
        parts.append(f'<p class="jump">{links}</p>')
    for i, country in enumerate(countries, 1):
        mine = [a for a in alerts if str(a.get("country")) == country]
        plot = country_plot(
            f"c{i}",
            country,
            _dict(series.get(country)),
            mine,
            [e for e in episodes if str(e.get("country")) == country],
            period,
            horizon_days,
        )
        parts.append(
            f'<section class="country" id="country-{esc(country)}"><h3>{esc(country_name(country))}</h3>'
        )
        if plot:
            svg, caption = plot
            parts.append(f"<figure>{svg}<figcaption>{caption}</figcaption></figure>")
        else:
            parts.append('<p class="muted">No signals, alerts or episodes for this country.</p>')
        parts.append(alerts_table(mine, f"alerts-{country}") + "</section>")
    parts.append("</section>")
    return "".join(parts)


def sweeps_section(sweeps: list[dict]) -> str:
    parts = ['<section id="sweeps-section"><h2>Threshold sweeps</h2>']
    if not sweeps:
        parts.append('<p class="muted">No thresholds were swept.</p></section>')
        return "".join(parts)
    parts.append(
        "<p>Each rule below was replayed with one parameter set to each value in turn: a curve "
        "towards the top left warns of more episodes for fewer false alarms.</p>"
    )
    for i, sweep in enumerate(sweeps, 1):
        rule, parameter = sweep.get("rule") or "rule", sweep.get("parameter") or "threshold"
        parts.append(f'<section class="sweep"><h3>{esc(rule)}: {esc(parameter)}</h3>')
        svg = sweep_plot(f"s{i}", sweep)
        if svg:
            parts.append(
                f"<figure>{svg}<figcaption>Recall against false alarms per country-year; each "
                f"point is labelled with its {esc(parameter)}.</figcaption></figure>"
            )
        else:
            parts.append(
                '<p class="muted">No point of this sweep has both a recall and a false-alarm rate.</p>'
            )
        rows = []
        for point in _list(sweep.get("points")):
            p = _dict(point)
            rows.append(
                "<tr>"
                + "".join(
                    [
                        _td(
                            esc(
                                fmt_num(p.get("value"))
                                if _number(p.get("value")) is not None
                                else p.get("value")
                                if p.get("value") is not None
                                else "n/a"
                            ),
                            True,
                        ),
                        _td(fmt_int(p.get("alerts")), True),
                        _td(f"{fmt_int(p.get('warned'))} / {fmt_int(p.get('episodes'))}", True),
                        _td(fmt_pct(p.get("recall")), True),
                        _td(fmt_pct(p.get("precision")), True),
                        _td(fmt_rate(p.get("false_alarms_per_country_year")), True),
                    ]
                )
                + "</tr>"
            )
        headers = [
            (esc(str(parameter).capitalize()), True),
            ("Alerts", True),
            ("Episodes warned", True),
            ("Recall", True),
            ("Precision", True),
            ("False alarms per country-year", True),
        ]
        parts.append(_table(headers, rows, table_id=f"sweep-{i}", cls="compact") + "</section>")
    parts.append("</section>")
    return "".join(parts)


def facts_section(scores: dict, horizon_days: float | None) -> str:
    method, inputs = _dict(scores.get("method")), _dict(scores.get("inputs"))
    files = [str(f) for f in _list(inputs.get("files"))]
    countries = [str(c) for c in _list(method.get("countries"))]
    rules = [  # optional: the rules replayed, with their window spec
        f"{r.get('id')} ({r['window']})" if r.get("window") else str(r.get("id"))
        for r in map(_dict, _list(method.get("rules")))
        if r.get("id")
    ]

    def unit(value: Any, name: str) -> str:
        return f"{fmt_int(value)} {name}" if _number(value) is not None else "n/a"

    facts = [
        ("Period", f"{esc(fmt_date(method.get('from')))} to {esc(fmt_date(method.get('to')))}"),
        ("Countries", esc(", ".join(country_name(c) for c in countries)) if countries else "n/a"),
        ("Warning horizon", unit(horizon_days, "days")),
        *([("Rules", esc(", ".join(rules)))] if rules else []),
        ("Input files", esc(", ".join(files)) if files else "n/a"),
        ("Events read", fmt_int(inputs.get("events"))),
        ("Observations", fmt_int(inputs.get("observations"))),
        *(
            [("Outside the period", fmt_int(inputs["outside_period"]))]
            if inputs.get("outside_period") is not None
            else []
        ),
        ("Signals", fmt_int(inputs.get("signals"))),
        ("Dead letters", fmt_int(inputs.get("dead_letters"))),
        ("Run time", fmt_seconds(inputs.get("seconds"))),
        ("Throughput", unit(inputs.get("events_per_second"), "events/s")),
        ("Peak memory", unit(inputs.get("peak_rss_mib"), "MiB")),
    ]
    items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in facts)
    note = str(method.get("note") or "").strip()
    paragraphs = [p for p in re.split(r"\n\s*\n", note) if p.strip()]
    note_html = (
        "".join(f"<p>{esc(' '.join(p.split()))}</p>" for p in paragraphs)
        or '<p class="muted">No method note.</p>'
    )
    return (
        f'<section id="replay-section"><h2>What was replayed</h2><dl class="facts">{items}</dl>'
        f'<h3 id="method-section">Method</h3><div class="note">{note_html}</div></section>'
    )


def render(result: dict) -> str:
    """The report page for a back-test result (see the module docstring)."""
    result = _dict(result)
    scores = _dict(result.get("scores"))
    method = _dict(scores.get("method"))
    period = (parse_day(method.get("from")), parse_day(method.get("to")))
    horizon_days = _number(method.get("horizon_days"))
    countries = [str(c) for c in _list(method.get("countries"))]
    what = (
        ", ".join(countries) if 0 < len(countries) <= 4 else _plural(len(countries), "country", "countries")
    )
    span = (
        f"{fmt_date(method.get('from'))} to {fmt_date(method.get('to'))}"
        if method.get("from") or method.get("to")
        else "an unstated period"
    )
    title = f"Back-test report: {what}, {span}"
    episodes = [e for e in _list(result.get("episodes") or scores.get("episodes")) if isinstance(e, dict)]
    overall = _dict(_dict(scores.get("totals")).get("overall"))
    lede = (
        f"A replay of history through tocsin's indicators and rules, scored against labelled "
        f"mass-killing episodes: {fmt_int(overall.get('alerts'))} alerts in all, and "
        f"{fmt_int(overall.get('warned'))} of {fmt_int(overall.get('episodes'))} scored episodes warned of."
    )
    with matplotlib.rc_context(MPL_RC):
        body = [
            f'<header><h1>{esc(title)}</h1><p class="lede">{esc(lede)}</p>',
            '<nav><a href="#replay-section">Replay</a><a href="#totals-section">Totals</a>'
            '<a href="#episodes-section">Episodes</a><a href="#countries-section">Countries</a>'
            '<a href="#sweeps-section">Threshold sweeps</a></nav></header><main>',
            facts_section(scores, horizon_days),
            totals_section(scores),
            episodes_section(episodes),
            countries_section(result, scores, period, horizon_days),
            sweeps_section([s for s in _list(result.get("sweeps")) if isinstance(s, dict)]),
            f"</main><footer>Written by tocsin backtest (scores schema version "
            f"{esc(scores.get('schema_version', 'n/a'))}).</footer>",
        ]
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
    )
    return head + "\n".join(body) + "\n</body></html>\n"


def write_report(directory: Path, result: dict) -> Path:
    """Write directory/report.html for a back-test result and return its path."""
    path = Path(directory) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(result).encode("utf-8"))
    return path
