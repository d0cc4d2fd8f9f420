"""Episodes for back-testing: the Early Warning Project's list and a user's CSV, with exact errors."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.conftest import FIXTURES
from tocsin.pipelines.backtest.episodes import Episode, EpisodesError, load_episodes, parse_episodes

EPISODES = FIXTURES / "episodes"


def test_ewp_list_at_year_resolution_with_successor_states():
    episodes = load_episodes(EPISODES / "ewp_mk_events_excerpt.csv")
    by_code = {e.code: e for e in episodes}
    assert set(by_code) == {"zan1964s1", "yug1991s1", "sdn2003s1", "caf2013ns1", "ssd2013ns1", "ssd2013s1"}
    ssd = by_code["ssd2013s1"]
    assert (ssd.country, ssd.start, ssd.end, ssd.resolution) == ("SSD", dt.date(2013, 1, 1), None, "year")
    assert ssd.name == "Salva Kiir government vs. suspected supporters of Riek Machar and Nuer ethnic group"
    assert by_code["sdn2003s1"].end == dt.date(2019, 12, 31)
    # States that no longer exist are placed where EWP's successor-state codes say.
    assert by_code["yug1991s1"].country == "HRV"
    assert by_code["zan1964s1"].country == "TZA"


def test_user_csv_with_days_years_and_ongoing_episodes():
    text = "country,start,end,name\nSSD,2013-12-15,,Juba\nCentral African Republic,2013,2014,CAR\n"
    assert parse_episodes(text) == [
        Episode("CAF", "CAR", dt.date(2013, 1, 1), dt.date(2014, 12, 31), "year"),
        Episode("SSD", "Juba", dt.date(2013, 12, 15), None, "day"),
    ]


def test_user_csv_without_a_name_column():
    (episode,) = parse_episodes("country,start,end\nSSD,2013-12-15,2014-01-31\n")
    assert episode.name == "SSD 2013-12-15" and episode.end == dt.date(2014, 1, 31)


def test_every_bad_row_is_listed_with_its_line():
    text = "country,start,end\nAtlantis,2013,\nSSD,15/12/2013,\nCAF,2014-01-01,2013-01-01\nSSD,,\n"
    with pytest.raises(EpisodesError) as caught:
        parse_episodes(text, "mine.csv")
    assert caught.value.errors == [
        "line 2: country: 'Atlantis' is not a country name or ISO alpha-3 code",
        "line 3: start: '15/12/2013' is not a date (YYYY-MM-DD) or a year (YYYY)",
        "line 4: end: 2013-01-01 is before start 2014-01-01",
        "line 5: start: missing",
    ]


def test_a_file_of_another_kind_is_refused_naming_its_columns():
    with pytest.raises(EpisodesError) as caught:
        parse_episodes("id,title\n1,x\n", "reports.csv")
    assert str(caught.value) == (
        "reports.csv: not an episodes file: expected the Early Warning Project's columns (country, "
        "mk_event_name, startyear, endyear) or country,start,end[,name]; the header has: id, title"
    )


def test_dated_2013_onsets_fixture():
    episodes = load_episodes(EPISODES / "onsets_2013_days.csv")
    assert [(e.country, e.start.isoformat()) for e in episodes] == [
        ("CAF", "2013-03-24"),
        ("CAF", "2013-12-05"),
        ("SSD", "2013-12-15"),
    ]
