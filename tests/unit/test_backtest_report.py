"""The back-test report page, read as HTML (no browser): tables, values, plots, escaping, determinism.

The fixture tests/fixtures/backtest/result.json is a small result of the shape `tocsin backtest` builds:
two countries, alerts of each status, two episodes (one ongoing) and a sweep of four points.
"""

from __future__ import annotations

import copy
import json
import re
from html.parser import HTMLParser

import pytest

from tests.conftest import FIXTURES
from tocsin.pipelines.backtest.report import (
    fmt_date,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_rate,
    fmt_seconds,
    write_report,
)

RESULT = FIXTURES / "backtest" / "result.json"


def load_result() -> dict:
    return json.loads(RESULT.read_text(encoding="utf-8"))


class Tables(HTMLParser):
    """Every table of a page by id: its rows as lists of cell texts (th and td, whitespace collapsed)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, list[list[str]]] = {}
        self.table: list[list[str]] | None = None
        self.row: list[str] | None = None
        self.cell: list[str] | None = None
        self.in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.table = self.tables.setdefault(dict(attrs).get("id") or f"#{len(self.tables)}", [])
        elif tag == "tr" and self.table is not None:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = []
        elif tag == "caption":
            self.in_caption = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.row.append(" ".join(" ".join(self.cell).split()))
            self.cell = None
        elif tag == "tr" and self.row is not None:
            self.table.append(self.row)
            self.row = None
        elif tag == "table":
            self.table = None
        elif tag == "caption":
            self.in_caption = False

    def handle_data(self, data):
        if self.cell is not None and not self.in_caption:
            self.cell.append(data)


def tables_of(page: str) -> dict[str, list[list[str]]]:
    parser = Tables()
    parser.feed(page)
    return parser.tables


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    directory = tmp_path_factory.mktemp("report")
    path = write_report(directory, load_result())
    return directory, path, path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(written) -> str:
    return written[2]


@pytest.fixture(scope="module")
def tables(page) -> dict[str, list[list[str]]]:
    return tables_of(page)


def test_the_report_is_written_as_report_html_in_the_directory(written):
    directory, path, page = written
    assert path == directory / "report.html"
    assert page.startswith("<!DOCTYPE html>")
    assert page.rstrip().endswith("</html>")


def test_the_page_says_what_was_replayed_and_how_it_was_scored(page):
    assert "<title>Back-test report: SSD, CAF, 2012-01-01 to 2014-01-29</title>" in page
    facts = dict(re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", page))
    assert facts == {
        "Period": "2012-01-01 to 2014-01-29",
        "Countries": "South Sudan (SSD), Central African Republic (CAF)",
        "Warning horizon": "365 days",
        "Input files": "South_Sudan.csv, Central_African_Republic.csv",
        "Events read": "43,041",
        "Observations": "43,000",
        "Signals": "1,234",
        "Dead letters": "3",
        "Run time": "12.3 s",
        "Throughput": "3,499 events/s",
        "Peak memory": "402 MiB",
    }
    # The method note, one paragraph per blank-line separated paragraph.
    assert (
        '<div class="note"><p>Every input record was replayed in event-time order through the indicator '
        "and rule pipelines.</p><p>An episode counts as warned when a rule fired in the 365 days before its "
        "start.</p></div>"
    ) in page


def test_totals_have_a_row_per_rule_and_one_for_all_rules(tables):
    assert tables["totals"] == [
        [
            "Rule",
            "Alerts",
            "Warned / scored episodes",
            "Recall",
            "Lead time, days: median (q1\u2013q3)",
            "Alerts during episodes",
            "False-alarm days / country-year",
            "Country-year precision",
            "Country-year recall",
        ],
        ["armed-conflict-deaths", "3", "1 / 2", "50.0%", "104 (104\u2013104)", "5", "5.05", "66.7%", "66.7%"],
        ["displacement-surge", "1", "0 / 2", "0.0%", "n/a", "1", "0.00", "100.0%", "50.0%"],
        ["All rules", "4", "1 / 2", "50.0%", "104 (104\u2013104)", "6", "5.05", "66.7%", "66.7%"],
    ]


def test_counts_behind_the_rates_are_in_the_cell_titles(page):
    assert '<td class="num" title="21 false-alarm days over 4.2 country-years">5.05</td>' in page
    assert '<td class="num" title="country-years: tp 2, fp 1, fn 1, tn 1">66.7%</td>' in page


def test_the_severity_table_breaks_each_row_down_by_severity(tables):
    rows = tables["by-severity"]
    assert rows[0][:3] == ["Severity", "Alerts", "Warned / scored episodes"]
    # All rules first, then each rule: its name heads its three severity rows.
    assert rows[1:5] == [
        ["All rules"],
        ["watch", "2", "1 / 2", "50.0%", "104 (104\u2013104)", "1", "5.05", "50.0%", "50.0%"],
        ["warning", "3", "1 / 2", "50.0%", "62 (62\u201362)", "4", "0.00", "100.0%", "66.7%"],
        ["critical", "1", "0 / 2", "0.0%", "n/a", "1", "0.00", "100.0%", "33.3%"],
    ]
    assert [r for r in rows if len(r) == 1] == [
        ["All rules"],
        ["armed-conflict-deaths"],
        ["displacement-surge"],
    ]
    assert rows[9:13] == [
        ["displacement-surge"],
        ["watch", "0", "0 / 2", "0.0%", "n/a", "0", "0.00", "n/a", "0.0%"],
        ["warning", "1", "0 / 2", "0.0%", "n/a", "1", "0.00", "100.0%", "50.0%"],
        ["critical", "0", "0 / 2", "0.0%", "n/a", "0", "0.00", "n/a", "0.0%"],
    ]
    assert len(rows) == 1 + 3 * 4


def test_the_episode_table_shows_each_episode_and_its_first_warning(tables):
    assert tables["episodes"] == [
        [
            "Country",
            "Episode",
            "Start",
            "End",
            "Resolution",
            "Warned",
            "Lead time, days",
            "First alert: rule, date",
            "Alerts during",
        ],
        [
            "SSD",
            "Killings in Juba, Bor and Malakal (ssd2013s1)",
            "2013-12-15",
            "ongoing",
            "day",
            "yes",
            "+104",
            "armed-conflict-deaths 2013-09-02",
            "4",
        ],
        [
            "CAF",
            "S\u00e9l\u00e9ka & anti-balaka killings (caf2013s1)",
            "2013-03-24",
            "2013-12-31",
            "month",
            "no",
            "n/a",
            "n/a",
            "2",
        ],
    ]


def test_alerts_are_listed_per_country_one_row_per_alert_from_firing_to_resolution(tables):
    ssd = tables["alerts-SSD"]
    assert ssd[0] == ["Fired", "Rule", "Highest severity", "Updates", "Resolved", "Summary when fired"]
    assert ssd[1][:5] == ["2013-09-02", "armed-conflict-deaths", "critical", "2", "2014-01-20"]
    assert ssd[1][5].startswith("armed-conflict-deaths fired for SSD: rf1.fatalities reached 25 (31)")
    assert ssd[2][:5] == ["2013-12-18", "displacement-surge", "warning", "0", "2014-01-10"]
    assert [r[:5] for r in tables["alerts-CAF"][1:]] == [
        ["2012-02-10", "armed-conflict-deaths", "watch", "0", "2012-03-01"],
        ["2013-05-02", "armed-conflict-deaths", "warning", "1", "open"],
    ]


def test_the_sweep_table_lists_each_threshold_value(tables):
    assert tables["sweep-1"] == [
        ["Lowest level", "Alerts", "Episodes warned", "Recall", "Precision", "False alarms per country-year"],
        ["5", "16", "2 / 2", "100.0%", "25.0%", "12.50"],
        ["10", "9", "2 / 2", "100.0%", "40.0%", "6.25"],
        ["25", "4", "1 / 2", "50.0%", "50.0%", "1.47"],
        ["50", "0", "0 / 2", "0.0%", "n/a", "0.00"],
    ]


def test_one_inline_svg_per_country_and_one_per_sweep(page):
    svgs = re.findall(r"<figure><svg [^>]*>", page)
    assert len(svgs) == page.count("<svg") == 3
    labels = [re.search(r'aria-label="([^"]*)"', s).group(1) for s in svgs]
    assert labels == [
        "Signals, alerts and episodes for South Sudan (SSD)",
        "Signals, alerts and episodes for Central African Republic (CAF)",
        "Recall against false alarms for armed-conflict-deaths by lowest level",
    ]
    assert all('role="img"' in s and "viewBox=" in s for s in svgs)
    # Captions say what each plot shows: the top 6 of SSD's 7 indicators, all 3 of CAF's.
    assert "of the top 6 of 7 indicators by total; 6 alert records (2 fired, 2 updated, 2 resolved)" in page
    assert "of 3 indicators; 4 alert records (2 fired, 1 updated, 1 resolved); 1 episode." in page


def test_svg_ids_are_unique_in_the_page_and_every_reference_resolves(page):
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    references = set(re.findall(r'href="#([^"]+)"', page)) | set(re.findall(r"url\(#([^)]+)\)", page))
    sections = {"replay-section", "totals-section", "episodes-section", "countries-section", "sweeps-section"}
    assert references - sections <= set(ids)
    assert len(references) > 20  # glyphs, markers and clip paths of the plots


def test_the_page_is_self_contained(page):
    assert "<script" not in page.lower()
    assert "<img" not in page.lower() and "@font-face" not in page and "@import" not in page
    assert "<?xml" not in page and "<metadata>" not in page and "<!--" not in page
    urls = set(re.findall(r"""(?:https?:)?//[^\s"')<>]+""", page))
    assert urls <= {
        "//www.w3.org/2000/svg",
        "//www.w3.org/1999/xlink",
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }
    assert re.findall(r'\b(?:src|href)="([^"#][^"]*)"', page) == ["data:,"]  # the empty favicon only
    assert "default-src 'none'" in page


def test_text_from_the_input_is_escaped(page):
    assert "Displacement surge near Bor &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more" in page
    assert "S\u00e9l\u00e9ka &amp; anti-balaka killings" in page
    assert "<script>" not in page


def test_the_same_result_gives_the_same_bytes(tmp_path, written):
    again = write_report(tmp_path, load_result())
    assert again.read_bytes() == written[1].read_bytes()


def test_an_empty_result_still_gives_a_page(tmp_path):
    page = write_report(tmp_path, {}).read_text(encoding="utf-8")
    tables = tables_of(page)
    assert tables["totals"][1:] == [
        ["All rules", "n/a", "n/a / n/a", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]
    ]
    assert "<svg" not in page
    assert "No episodes." in page and "No countries." in page and "No thresholds were swept." in page


def test_missing_series_empty_lists_and_none_values_are_shown_as_such(tmp_path):
    result = load_result()
    del result["series"]["CAF"]
    result["scores"]["method"]["countries"].append("COD")  # named, but nothing happened there
    result["alerts"] = [a for a in result["alerts"] if a["country"] == "CAF"]  # none left for SSD
    result["sweeps"] = [{"rule": "x", "parameter": "level", "points": [{"value": 1, "recall": None}]}]
    totals = result["scores"]["totals"]["overall"]
    totals.update(recall=None, lead_time_days=None, country_year=None, false_alarm_days_per_country_year=None)
    for episode in result["episodes"]:
        episode.update(warned=None, lead_time_days=None, first_alert_rule=None, first_alert_at=None)
    result["episodes"][0]["name"] = "Costs of $5 and $x$"  # '$' is not matplotlib maths here
    page = write_report(tmp_path, result).read_text(encoding="utf-8")
    tables = tables_of(page)
    assert tables["totals"][-1] == ["All rules", "4", "1 / 2", "n/a", "n/a", "6", "n/a", "n/a", "n/a"]
    assert [r[5:8] for r in tables["episodes"][1:]] == [["n/a", "n/a", "n/a"]] * 2  # warned, lead, first
    # SSD: series and an episode but no alerts; CAF: alerts and an episode, no series; COD: nothing.
    assert page.count("<svg") == 2
    assert "no alerts; 1 episode." in page
    assert "No signal series; 4 alert records" in page
    assert "No signals, alerts or episodes for this country." in page
    assert "No point of this sweep has both a recall and a false-alarm rate." in page
    assert tables["sweep-1"][1] == ["1", "n/a", "n/a / n/a", "n/a", "n/a", "n/a"]


def test_many_rules_share_one_row_of_alert_marks(tmp_path):
    result = load_result()
    base = result["alerts"][0]
    result["alerts"] = [dict(copy.deepcopy(base), id=f"r{i}", rule_id=f"rule-{i}") for i in range(8)]
    page = write_report(tmp_path, result).read_text(encoding="utf-8")
    assert "8 alert records (8 fired); the 8 rules share one row of alert marks" in page
    assert len(tables_of(page)["alerts-SSD"]) == 1 + 8


def test_numbers_are_formatted_for_people():
    assert fmt_int(1234567) == "1,234,567"
    assert fmt_int(None) == fmt_num(None) == fmt_pct(None) == fmt_rate(None) == "n/a"
    assert fmt_int(float("nan")) == "n/a"
    assert fmt_num(3) == "3" and fmt_num(3.0) == "3" and fmt_num(1234.567) == "1,234.57"
    assert fmt_num(12.34, 1) == "12.3"
    assert fmt_rate(0) == "0.00" and fmt_rate(5.048) == "5.05"
    assert fmt_pct(2 / 3) == "66.7%" and fmt_pct(1) == "100.0%"
    assert fmt_seconds(12.34) == "12.3 s" and fmt_seconds(312) == "5 min 12 s"
    assert fmt_seconds(3725) == "1 h 02 min"
    assert fmt_date(1_378_080_000_000) == "2013-09-02" and fmt_date("2013-09-02T10:00:00Z") == "2013-09-02"
    assert fmt_date(None) == "n/a"


def test_overlapping_episodes_get_lanes_of_their_own_and_later_ones_reuse_them():
    from datetime import date

    from tocsin.pipelines.backtest.report import _episode_lanes

    def span(start: str, end: str) -> dict:
        day = date.fromisoformat
        return {"start": day(start), "end": day(end), "warn_from": day(start), "label": "x"}

    # The second and third overlap the first, not each other; the fourth overlaps none.
    spans = [
        span("1993-01-01", "1997-12-31"),
        span("1994-01-01", "1994-12-31"),
        span("1996-01-01", "1999-12-31"),
    ]
    spans += [span("2005-01-01", "2006-12-31"), span("2006-01-01", "2009-12-31")]
    assert _episode_lanes(spans, date(1990, 1, 1), date(2010, 1, 1)) == 2
    assert [s["lane"] for s in spans] == [0, 1, 1, 0, 1]
    assert [(s["label_at"], s["label_ha"]) for s in spans[:2]] == [
        (date(1993, 1, 1), "left"),
        (date(1994, 1, 1), "left"),
    ]
    # A name that would run past the right edge ends there instead.
    late = [span("2009-06-01", "2009-12-31")]
    late[0]["label"] = "a long episode name"
    assert _episode_lanes(late, date(1990, 1, 1), date(2010, 1, 1)) == 1
    assert (late[0]["label_at"], late[0]["label_ha"]) == (date(2010, 1, 1), "right")
