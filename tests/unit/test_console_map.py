"""The console's map is drawn offline from the installed outlines: the countries tocsin's cases are in
(South Sudan since 2011...) have one, a code without an outline gets no map."""

from __future__ import annotations

from tocsin.router.console.map import has_outline, map_svg


def test_the_countries_of_the_cases_have_outlines_and_neighbours():
    for iso3 in ("SSD", "SDN", "ETH", "CAF", "COD", "SYR", "UKR", "AFG", "NGA", "PSE", "YEM", "HTI"):
        assert has_outline(iso3), iso3
    svg = map_svg("SSD", "SSD")
    assert svg.startswith('<svg role="img" aria-label="SSD"') and svg.count("<path") > 5  # it and neighbours


def test_no_outline_no_map():
    # The package has no outline of Myanmar or Kosovo: their alerts' pages show no map, and say where
    # in words (README, "Supported, and not yet").
    assert [map_svg(code, code) for code in ("ZZZ", "MMR", "XKX")] == ["", "", ""]
