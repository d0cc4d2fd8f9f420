"""`tocsin demo` against the real broker: every connector lands the bundled data, nothing is lost."""

from __future__ import annotations

import pytest

from tocsin.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_ingests_the_bundled_sample_data(capsys):
    # As `make demo` runs it: its own fresh local broker, stopped at the end.
    assert run_demo() == 0
    out = " ".join(capsys.readouterr().out.split())
    for row in (
        "ucdp-ged │ 300 │ 0",
        "gdelt2 │ 931 │ 0",
        "rss │ 8 │ 0",
        "reliefweb │ 4 │ 0",
        "intake │ 1 │ 0",
    ):
        assert row in out
    assert "tocsin.incidents.raw.v1: 1232 incident reports" in out
    assert "tocsin.news.raw.v1: 12 news items" in out
    assert "coordinates coarsened to (13.490, 39.490)" in out
    assert "local broker stopped" in out
