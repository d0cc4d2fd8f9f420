"""The plot on an alert's page: the value its rule read at each of the alert's events (fired, updated,
resolved), against the rule's threshold, with the current window shaded. Inline SVG, drawn offline."""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib import dates as mdates

from tocsin.plots import RC, figure, inline_svg

STATUS_COLOURS = {"FIRING": "#D55E00", "RESOLVED": "#009E73"}


def series_svg(
    events: list[dict], name: str, threshold: float | None, window: tuple[int, int], labels: dict[str, str]
) -> str:
    """`events`: {window_end (ms), value, status} in order; `labels`: the texts, in the reader's language
    (title, threshold, window)."""
    with matplotlib.rc_context({**RC, "svg.hashsalt": "tocsin-console"}):
        fig = figure(figsize=(8, 2.8))
        ax = fig.add_subplot()
        times = np.array([int(e["window_end"]) for e in events], dtype="datetime64[ms]")
        values = [e["value"] for e in events]
        ax.plot(times, values, color="#444444", linewidth=1.2, marker="o", markersize=4, label=name)
        for e, t in zip(events, times, strict=True):
            colour = STATUS_COLOURS.get(e["status"])
            if colour:
                ax.plot([t], [e["value"]], marker="o", markersize=8, color=colour, linestyle="none")
        if threshold is not None:
            ax.axhline(threshold, color="#B00020", linestyle="--", linewidth=1, label=labels["threshold"])
        start, end = (np.datetime64(int(w), "ms") for w in window)
        ax.axvspan(start, end, color="#F2C14E", alpha=0.25, label=labels["window"])
        ax.set_title(labels["title"], loc="left")
        ax.set_ylim(bottom=0, top=max([*values, threshold or 0]) * 1.25 or 1)
        locator = mdates.AutoDateLocator(minticks=3, maxticks=7)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.legend(loc="upper left", frameon=False, ncols=3)
        return inline_svg(fig, "series", labels["title"])
