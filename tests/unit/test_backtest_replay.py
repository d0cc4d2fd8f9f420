"""What a back-test asks of the indicator transforms: the rules' windows and indicators, no more."""

from __future__ import annotations

from tocsin.pipelines.backtest.replay import rule_indicators, rule_windows
from tocsin.pipelines.backtest.run import file_countries, settings_for
from tocsin.pipelines.indicators.aggregate import Evidence, Hit, wire
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.indicators.transforms import _FitsWindow
from tocsin.pipelines.rules.config import load_rules


def test_only_the_windows_and_indicators_the_rules_read():
    catalogue = load_catalogue()
    ruleset = load_rules(None, catalogue)
    windows, by_region = rule_windows(ruleset)
    assert [w.label() for w in windows] == ["1d/1h", "7d/1d"] and by_region is False
    wanted = rule_indicators(ruleset)
    assert "volume.reports" in wanted["7d/1d"]  # the share rule divides by it, weekly
    assert "volume.reports" not in wanted["1d/1h"]  # no rule reads it hourly: no hourly volume panes
    settings = settings_for(ruleset, catalogue)
    assert (settings.allowed_lateness_s, settings.early_count, settings.early_seconds) == (0, None, None)

    hit = wire(Hit("k", 1.0, 0, "a.org", Evidence("o", "s", None, None, "a.org", 0)))
    hourly = _FitsWindow(86_400, wanted["1d/1h"])
    assert list(hourly.process((("volume.reports", "SSD", None), hit))) == []
    assert list(hourly.process((("rf11.attack_on_civilians", "SSD", None), hit)))


def test_countries_pair_with_files():
    files = ["a.csv", "b.csv"]
    assert file_countries(files, []) == [("a.csv", None), ("b.csv", None)]
    assert file_countries(files, ["SSD"]) == [("a.csv", "SSD"), ("b.csv", "SSD")]
    assert file_countries(files, ["SSD", "CAF"]) == [("a.csv", "SSD"), ("b.csv", "CAF")]
