"""Deaths read from headlines and report text, in English and French, with what must not count."""

from __future__ import annotations

import pytest

from tocsin.pipelines.indicators.casualties import read_deaths


@pytest.mark.parametrize(
    ("text", "deaths", "phrase"),
    [
        ("Syria violence kills 37", 37, "kills 37"),
        ("Gunmen kill 12 villagers in Jonglei", 12, "kill 12"),
        ("At least 37 people were killed in Bor", 37, "at least 37 people were killed"),
        ("Bombing kills 1,200", 1200, "kills 1,200"),
        ("Death toll rises to 120 in Malakal", 120, "death toll rises to 120"),
        ("Attack claims 12 lives", 12, "claims 12 lives"),
        ("Dozens of civilians massacred near Bentiu", 24, "dozens of civilians massacred"),
        ("Hundreds killed in South Sudan cattle attacks", 200, "hundreds killed"),
        ("3 killed, 20 wounded in Juba", 3, "3 killed"),
        ("37 morts à Bangui", 37, "37 morts"),
        ("Centrafrique : au moins 50 personnes tuées", 50, "au moins 50 personnes tuees"),
        ("1 200 morts en trois jours", 1200, "1 200 morts"),
        ("Des dizaines de civils tués à Bossangoa", 20, "des dizaines de civils tues"),
        ("Un casque bleu tué dans une embuscade", 1, "un casque bleu tue"),
    ],
)
def test_deaths_stated(text, deaths, phrase):
    assert read_deaths(text) == (deaths, phrase)


@pytest.mark.parametrize(
    "text",
    [
        "Clashes leave 3 million displaced",  # displaced, not dead
        "37 wounded in Juba clashes",  # injuries are not deaths
        "10 years after the massacre",
        "Security Council resolution 2046",
        "Cholera outbreak kills 27 in south Sudan - UN",  # disease
        "At least 38 people killed in heavy rains across Sudan",  # disaster
        "La rougeole tue 37 enfants dans le nord-ouest",
        "Over 800 killed in south Sudan since January: UN",  # a total over months
        "95,000 children killed by preventable diseases in 2003",
        "South Sudan: 2013 crisis overview",
    ],
)
def test_not_deaths_of_violence_in_the_window(text):
    assert read_deaths(text) == (0, None)


def test_the_largest_number_over_title_and_text():
    assert read_deaths("Fighting kills 12", "Death toll rises to 40 on Sunday") == (
        40,
        "death toll rises to 40",
    )
    assert read_deaths(None, "") == (0, None)
