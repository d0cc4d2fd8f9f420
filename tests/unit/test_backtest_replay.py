"""What a back-test asks of the indicator transforms: the rules' windows and indicators, no more."""

from __future__ import annotations

from tocsin.pipelines.backtest.replay import rule_indicators, rule_windows
from tocsin.pipelines.backtest.run import file_countries, settings_for
from tocsin.pipelines.indicators.catalogue import load_catalogue
from tocsin.pipelines.indicators.slices import _Spec
from tocsin.pipelines.rules.config import load_rules
from tocsin.pipelines.windowspec import WindowSpec


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

    hourly = _Spec(WindowSpec.parse("1d/1h"), wanted["1d/1h"])
    assert not hourly.takes("volume.reports", 1)
    assert hourly.takes("rf11.attack_on_civilians", 1)


def test_countries_pair_with_files():
    files = ["a.csv", "b.csv"]
    assert file_countries(files, []) == [("a.csv", None), ("b.csv", None)]
    assert file_countries(files, ["SSD"]) == [("a.csv", "SSD"), ("b.csv", "SSD")]
    assert file_countries(files, ["SSD", "CAF"]) == [("a.csv", "SSD"), ("b.csv", "CAF")]
