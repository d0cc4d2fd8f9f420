"""Where an alert is: its country outlined among its neighbours, drawn on the server as inline SVG.

The outlines are the `countryinfo` package's GeoJSON (low resolution, MIT licence), read from the
installed package: no tile server, nothing fetched, so the map shows in a room without internet. A
region's own outline is not in it; the region is named in the caption.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib import resources

import matplotlib
from matplotlib.patches import Polygon

from tocsin.plots import RC, figure, inline_svg


@cache
def _countries() -> dict[str, dict]:
    """ISO alpha-3 -> {'rings': [[(lon, lat), ...], ...], 'borders': [ISO3, ...]}, for every country
    the package has an outline of."""
    found = {}
    for path in (resources.files("countryinfo") / "data").iterdir():
        if not path.name.endswith(".json"):
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        iso3 = (data.get("ISO") or {}).get("alpha3")
        features = (data.get("geoJSON") or {}).get("features") or []
        rings = [ring for f in features for ring in _rings(f.get("geometry") or {})]
        if iso3 and rings:
            found[iso3] = {"rings": rings, "borders": list(data.get("borders") or [])}
    return found


def _rings(geometry: dict) -> list[list[tuple[float, float]]]:
    if geometry.get("type") == "Polygon":
        return [geometry["coordinates"][0]]
    if geometry.get("type") == "MultiPolygon":
        return [polygon[0] for polygon in geometry["coordinates"]]
    return []


def has_outline(iso3: str) -> bool:
    return iso3 in _countries()


def map_svg(iso3: str, label: str) -> str:
    """The country (red) among its neighbours (grey), framed on it; '' when there is no outline."""
    countries = _countries()
    country = countries.get(iso3)
    if country is None:
        return ""
    lons = [x for ring in country["rings"] for x, _ in ring]
    lats = [y for ring in country["rings"] for _, y in ring]
    pad = max(max(lons) - min(lons), max(lats) - min(lats)) * 0.35 + 1
    with matplotlib.rc_context({**RC, "svg.hashsalt": "tocsin-console-map", "axes.grid": False}):
        fig = figure(figsize=(3.6, 3.2))
        ax = fig.add_subplot()
        for neighbour in country["borders"]:
            for ring in countries.get(neighbour, {}).get("rings", []):
                ax.add_patch(Polygon(ring, closed=True, facecolor="#E5E5E5", edgecolor="#9A9A9A", lw=0.6))
        for ring in country["rings"]:
            ax.add_patch(Polygon(ring, closed=True, facecolor="#D55E00", edgecolor="#7A2E00", lw=0.8))
        ax.set_xlim(min(lons) - pad, max(lons) + pad)
        ax.set_ylim(min(lats) - pad, max(lats) + pad)
        # Degrees of longitude shrink towards the poles: scaled at the country's latitude.
        ax.set_aspect(1 / max(math.cos(math.radians((min(lats) + max(lats)) / 2)), 0.2))
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ("left", "bottom"):
            ax.spines[side].set_visible(False)
        ax.set_facecolor("#F3F7FA")
        return inline_svg(fig, "map", label)
