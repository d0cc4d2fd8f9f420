"""Plots inlined in pages that must work offline (the back-test report, the console): matplotlib figures
as SVG with their text drawn as paths, so a page needs no font, script or network to show them."""

from __future__ import annotations

import html
import io
import re

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

RC = {
    "svg.fonttype": "path",  # glyphs as paths: the page needs no font
    "font.family": "DejaVu Sans",  # ships with matplotlib, so every machine measures text the same
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#DDDDDD",
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "path.simplify": True,
}


def figure(**kwargs) -> Figure:
    fig = Figure(layout="constrained", **kwargs)
    FigureCanvasAgg(fig)  # Agg measures the text for the layout; the SVG backend then draws it
    return fig


def inline_svg(fig: Figure, prefix: str, label: str) -> str:
    """The figure as inline SVG: no XML prolog, metadata or comments, and ids unique in the page."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"\s*<!--.*?-->", "", svg, flags=re.S)
    # matplotlib numbers ids per figure (figure_1, glyphs, markers): prefix them, so figures sharing the
    # page do not share ids.
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{prefix}-\1"', svg)
    svg = re.sub(r'(href)="#([^"]+)"', rf'\1="#{prefix}-\2"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}-\1)", svg)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{html.escape(label)}" ', 1)
