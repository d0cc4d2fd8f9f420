"""The back-test report in a real browser: Debian's headless Chromium, driven by playwright.

The page written from the fixture result is opened as a file, the way an analyst opens it: it must
render with no console or page errors, fetch nothing but itself, show its tables and plots at a real
size without spilling sideways, and give a full-page screenshot that is an actual rendering.

Playwright drives the system browser (`make chromium` installs Debian's package); it never downloads
one. Without /usr/bin/chromium the test is skipped, unless TOCSIN_REQUIRE_CHROMIUM is set (`make test`
sets it), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import FIXTURES
from tocsin.pipelines.backtest.report import write_report

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 900}
TABLES = ("totals", "by-severity", "episodes", "sweep-1")


def chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("TOCSIN_REQUIRE_CHROMIUM"):  # make test installs it: missing is a failure there
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip(f"Chromium not found at {CHROMIUM}: run `make chromium` (Debian's package, needs root)")
    return CHROMIUM


def is_a_rendering(image, min_colours: int) -> bool:
    """Not blank: many distinct colours and some spread, unlike a page of one colour."""
    import numpy as np

    rgb = (np.asarray(image)[..., :3].reshape(-1, 3) * 255).round().astype(np.uint32)
    colours = np.unique(rgb[:, 0] << 16 | rgb[:, 1] << 8 | rgb[:, 2])
    return rgb.std() > 5 and len(colours) >= min_colours


def test_the_report_renders_in_headless_chromium_with_no_errors_and_no_network(tmp_path):
    executable = chromium()
    from matplotlib import image as mpimg
    from playwright.sync_api import sync_playwright

    result = json.loads((FIXTURES / "backtest" / "result.json").read_text(encoding="utf-8"))
    url = write_report(tmp_path / "report", result).resolve().as_uri()
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    failed: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.on("request", lambda request: requests.append(request.url))
            context.on("requestfailed", lambda request: failed.append(request.url))
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on("console", lambda msg: console_errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda error: page_errors.append(str(error)))
            page.goto(url, wait_until="load")

            assert page.title() == "Back-test report: SSD, CAF, 2012-01-01 to 2014-01-29"
            assert page.get_by_role("heading", level=1).inner_text() == page.title()

            # The tables are on screen (scrolled to), with their values.
            for table_id in TABLES:
                table = page.locator(f"table#{table_id}")
                table.scroll_into_view_if_needed()
                assert table.is_visible(), table_id
                box = table.bounding_box()
                assert box and box["width"] > 300 and box["height"] > 60, (table_id, box)
            assert page.locator("table#totals tr.all").inner_text().split("\t")[:3] == [
                "All rules",
                "4",
                "1 / 2",
            ]

            # One plot per country and per sweep, each drawn at a real size within the page's width.
            plots = page.locator("figure svg")
            assert plots.count() == 3
            for i in range(plots.count()):
                box = plots.nth(i).bounding_box()
                assert box and 500 < box["width"] <= 1000 and box["height"] > 250, (i, box)
                shot = tmp_path / f"plot-{i}.png"
                plots.nth(i).screenshot(path=str(shot))
                assert is_a_rendering(mpimg.imread(shot), min_colours=40), shot

            # Nothing spills sideways at this width: neither the page nor a table out of its box.
            assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORT["width"]
            overflowing = page.evaluate(
                "[...document.querySelectorAll('.table-wrap')]"
                ".filter(w => w.scrollWidth > w.clientWidth + 1).map(w => w.firstChild.id)"
            )
            assert overflowing == []

            # A news-borne <script> is text on the page, not a script.
            page.locator("details").first.locator("summary").click()
            alerts = page.locator("table#alerts-SSD")
            assert alerts.is_visible()
            assert 'Displacement surge near Bor <script>alert("x")</script> & more' in alerts.inner_text()
            assert page.evaluate("document.scripts.length") == 0

            screenshot = tmp_path / "report.png"
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert console_errors == [] and page_errors == []
    assert requests == [url] and failed == []  # the file itself, nothing else
    image = mpimg.imread(screenshot)
    height, width = image.shape[:2]
    assert width == VIEWPORT["width"] and height > 2 * VIEWPORT["height"], image.shape
    assert is_a_rendering(image, min_colours=200)
