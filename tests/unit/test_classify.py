"""The classifier: every matcher type on real GDELT and UCDP rows and EN/FR sentences, with exact reasons."""

from __future__ import annotations

import collections
from functools import cache

import pytest

from tests.conftest import DATA
from tocsin.formats import gdelt, ucdp
from tocsin.pipelines.indicators import Match, classify, fold, load_catalogue, parse_catalogue
from tocsin.pipelines.indicators.catalogue import packaged_catalogue_path
from tocsin.pipelines.indicators.classify import cameo_codes, matchers

GDELT_DIR = DATA / "gdelt2" / "export_15min"
UCDP_CSV = DATA / "ucdp_ged" / "ucdpged_23_1_sample1000.csv"


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def observation(report: dict) -> dict:
    """The Observation of an IncidentReport as the connectors emit it, by the pipeline's normaliser."""
    from tocsin.pipelines.indicators.normalise import normalise

    return normalise("IncidentReport", report)


@cache
def gdelt_reports() -> dict[str, dict]:
    reports = {}
    for path in gdelt.export_files(GDELT_DIR):
        for _, report in gdelt.parse_text(gdelt.read_export(path), ingested_at=1):
            reports[report["source_record_id"]] = report
    return reports


@cache
def ucdp_reports() -> dict[str, dict]:
    with open(UCDP_CSV, newline="", encoding="utf-8") as handle:
        return {r["source_record_id"]: r for _, r in ucdp.parse_csv(handle) if isinstance(r, dict)}


def summary(matches: list[Match]) -> dict[str, list[str]]:
    """Indicator -> reasons, without volume.reports (every report of a text source matches it)."""
    return {m.indicator_id: m.reasons for m in matches if m.indicator_id != "volume.reports"}


# ------------------------------------------------------------------------------------------ folding


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Déplacés", "deplaces"),
        ("ÉLECTION présidentielle", "election presidentielle"),
        ("l’armée", "l'armee"),
        ("Straße", "strasse"),
        ("Ñandú", "nandu"),
        ("e\u0301vacuation", "evacuation"),  # decomposed accent
    ],
)
def test_fold(text, folded):
    assert fold(text) == folded


def test_cameo_codes_derive_base_and_root_from_an_event_code():
    assert cameo_codes(["cameo:1821", "ucdp:type_of_violence:3"]) == {
        "cameo:1821",
        "cameo-base:182",
        "cameo-root:18",
        "ucdp:type_of_violence:3",
    }


# ------------------------------------------------------------------------------------------ real GDELT rows

GDELT_CASES = [
    # 13 Nov 2020, Helmand: EventCode 190 Use conventional military force
    ("954680550", {"rf1.armed_conflict": ["cameo-root:19 FIGHT"]}),
    # Karabakh: EventCode 203 Engage in ethnic cleansing (root 20)
    (
        "954699222",
        {
            "rf10.intent_to_destroy": ["cameo:203 Engage in ethnic cleansing"],
            "rf11.attack_on_civilians": ["cameo:203 Engage in ethnic cleansing"],
            "displacement.forced_displacement": ["cameo:203 Engage in ethnic cleansing"],
        },
    ),
    # Tigray: EventCode 1823 Kill by physical assault (root 18)
    ("954708494", {"rf2.violence_against_civilians": ["cameo:1823 Kill by physical assault"]}),
    # Honduras: EventCode 1821 Sexually assault, base 182
    (
        "954749295",
        {
            "rf2.violence_against_civilians": ["cameo-base:182 Physically assault, not specified below"],
            "sgbv.sexual_violence": ["cameo:1821 Sexually assault"],
        },
    ),
    # New York: EventCode 186 Assassinate
    ("954694966", {"rf8.attacks_on_leaders": ["cameo-base:186 Assassinate"]}),
    # Yerevan: EventCode 1724 Impose state of emergency or martial law
    ("954708357", {"rf7.emergency_measures": ["cameo:1724 Impose state of emergency or martial law"]}),
    # Hozat: EventCode 138 Threaten to use military force, Goldstein -7.0, under the -7 ceiling
    ("954694194", {"rf13.threats_of_violence": ["cameo-root:13 THREATEN", "goldstein -7 <= -7"]}),
    # Philippines: EventCode 130 Threaten, not specified below, Goldstein -4.4: above the ceiling, no match
    ("954682809", {}),
    # Libya/Egypt: EventCode 164 Expel or withdraw, not specified below: not aid agencies or peacekeepers
    ("954691104", {}),
    # Cairo: EventCode 145 Protest violently, riot
    ("954688657", {"rf1.violent_unrest": ["cameo-base:145 Protest violently, riot"]}),
]


@pytest.mark.parametrize(("event_id", "expected"), GDELT_CASES, ids=[c[0] for c in GDELT_CASES])
def test_real_gdelt_rows(catalogue, event_id, expected):
    assert summary(classify(catalogue, observation(gdelt_reports()[event_id]))) == expected


def test_match_weights_come_from_the_catalogue(catalogue):
    matches = classify(catalogue, observation(gdelt_reports()["954694194"]))
    assert matches == [
        Match("rf13.threats_of_violence", 0.5, ["cameo-root:13 THREATEN", "goldstein -7 <= -7"])
    ]


def test_goldstein_ceiling_needs_a_known_score(catalogue):
    assert summary(classify(catalogue, {"event_codes": ["cameo:138"], "goldstein": None})) == {}
    assert summary(classify(catalogue, {"event_codes": ["cameo:138"], "goldstein": -7.5})) == {
        "rf13.threats_of_violence": ["cameo-root:13 THREATEN", "goldstein -7.5 <= -7"]
    }


def test_counts_over_every_gdelt_sample_row(catalogue):
    """Measured over the 9,354 rows of the 32 shared GDELT files (13-15 Nov 2020).

    They follow from the CAMEO codes in the sample (EventCode counts): root 19 = 654 rows; root 15 = 36;
    rf2 = 180 (20) + 181 (4) + 182 (19) + 1821 (3) + 1822 (5) + 1823 (1) + 183 (18) = 70; 145 = 9;
    1721 = 3; 138 = 25 (the 80 rows of 130 and 13 of 1312/1313 are above the -7 Goldstein ceiling);
    186 = 5; 203 = 4 (both rf11 and displacement); 1723 (1) + 1724 (3) = 4; 1711 (5) + 1712 (7) = 12;
    1821 = 3 (both rf2 and sgbv). Nothing matches RF9, RF14 or the expulsion of NGOs: the sample has no
    1233, 136, 1623 or 164x sub-code (its 70 rows of 164 are the unspecified "Expel or withdraw"), and GDELT
    rows carry no text for the keyword lexicons. 829 matches on 822 rows (7 rows match two indicators).
    """
    reports = gdelt_reports()
    assert len(reports) == 9354
    counts: collections.Counter[str] = collections.Counter()
    rows_matched = 0
    for report in reports.values():
        matches = classify(catalogue, observation(report))
        rows_matched += bool(matches)
        counts.update(m.indicator_id for m in matches)
    assert dict(counts) == {
        "rf1.armed_conflict": 654,
        "rf7.security_mobilisation": 36,
        "rf2.violence_against_civilians": 70,
        "rf13.threats_of_violence": 25,
        "rf7.destruction_of_property": 12,
        "rf1.violent_unrest": 9,
        "rf8.attacks_on_leaders": 5,
        "rf11.attack_on_civilians": 4,
        "displacement.forced_displacement": 4,
        "rf7.emergency_measures": 4,
        "rf7.media_restrictions": 3,
        "sgbv.sexual_violence": 3,
        "rf10.intent_to_destroy": 4,  # the four ethnic-cleansing events (CAMEO 203) of rf11
    }
    assert sum(counts.values()) == 833 and rows_matched == 822


# ------------------------------------------------------------------------------------------ real UCDP rows

UCDP_CASES = [
    # Mali 1991, Government of Mali - Civilians, one-sided, best 20, all civilians
    (
        "12989",
        {
            "rf2.violence_against_civilians": ["ucdp violence type 3 with 20 deaths"],
            "rf2.civilians_killed": ["20 civilians killed (at least 1)"],
            "rf11.attack_on_civilians": ["ucdp violence type 3 with 20 deaths"],
        },
    ),
    # Kosovo 1998, one-sided, best 6: below the 10 deaths of rf11
    (
        "202838",
        {
            "rf2.violence_against_civilians": ["ucdp violence type 3 with 6 deaths"],
            "rf2.civilians_killed": ["6 civilians killed (at least 1)"],
        },
    ),
    # Burkina Faso 2019, Yirgou massacre: one-sided with 23 deaths, and the headline's keyword
    (
        "285416",
        {
            "rf2.violence_against_civilians": ["ucdp violence type 3 with 23 deaths"],
            "rf2.civilians_killed": ["23 civilians killed (at least 1)"],
            "rf11.attack_on_civilians": ["ucdp violence type 3 with 23 deaths", "keyword 'Massacre' (en)"],
        },
    ),
    # Mozambique 1989, Government of Mozambique - Renamo, state-based, best 0
    ("15321", {"rf1.armed_conflict": ["ucdp violence type 1 with 0 deaths"]}),
    # DR Congo 2021: "At least four displaced persons killed in a new attack by CODECO militias"
    (
        "401224",
        {
            "rf2.violence_against_civilians": ["ucdp violence type 3 with 4 deaths"],
            "rf2.civilians_killed": ["4 civilians killed (at least 1)"],
            "rf7.arms_and_militias": ["keyword 'militias' (en)"],
            "displacement.forced_displacement": ["keyword 'displaced' (en)"],
        },
    ),
]


@pytest.mark.parametrize(("ucdp_id", "expected"), UCDP_CASES, ids=[c[0] for c in UCDP_CASES])
def test_real_ucdp_rows(catalogue, ucdp_id, expected):
    assert summary(classify(catalogue, observation(ucdp_reports()[ucdp_id]))) == expected


def test_counts_over_the_ucdp_sample(catalogue):
    """1,000 GED rows: 707 state-based + 133 non-state = 840 rf1; 160 one-sided = rf2. rf11 = 23 one-sided
    rows with best >= 10, plus 18 rows whose headline names a massacre, genocide, war crimes or civilians
    killed or attacked. The other keyword hits are headlines naming militias (16), displaced or fleeing
    people (3), an election, propaganda and sexual violence. The text-only indicators (killings and
    fighting reported) do not read a curated dataset's notes."""
    counts: collections.Counter[str] = collections.Counter()
    for report in ucdp_reports().values():
        counts.update(m.indicator_id for m in classify(catalogue, observation(report)))
    assert dict(counts) == {
        "rf1.armed_conflict": 840,
        "rf2.violence_against_civilians": 160,
        # 308 rows of every type of violence record civilians among their deaths (deaths_civilians).
        "rf2.civilians_killed": 308,
        "rf11.attack_on_civilians": 41,
        "rf7.arms_and_militias": 16,
        "rf8.elections": 1,
        "sgbv.sexual_violence": 1,
        "rf8.incitement": 1,
        "displacement.forced_displacement": 3,
    }


# ------------------------------------------------------------------------------------------ sentences

SENTENCES = [
    (
        "fr",
        "Des milliers de déplacés fuient les combats",
        {
            "rf1.fighting_reported": ["keyword 'combats' (fr)"],
            "displacement.forced_displacement": [
                "keyword 'déplacés' (fr)",
                "keyword 'fuient les combats' (fr)",
            ],
        },
    ),
    ("fr", "DES MILLIERS DE DEPLACES", {"displacement.forced_displacement": ["keyword 'DEPLACES' (fr)"]}),
    ("fr", "Il doit se déplacer à Goma pour le déplacement du ministre", {}),
    (
        "fr",
        "Les violences sexuelles et les viols se multiplient",
        {"sgbv.sexual_violence": ["keyword 'violences sexuelles' (fr)", "keyword 'viols' (fr)"]},
    ),
    ("fr", "La violence a repris et le gouvernement viole l'accord", {}),
    (
        "fr",
        "Deux humanitaires tués et un convoi humanitaire pillé près de Bunia",
        {
            "rf2.killings_reported": ["keyword 'tués' (fr)"],
            "rf14.threats_to_humanitarian_and_peacekeeping": [
                "keyword 'humanitaires tués' (fr)",
                "keyword 'convoi humanitaire pillé' (fr)",
            ],
        },
    ),
    (
        "fr",
        "Le gouverneur annonce l’expulsion des ONG et une coupure d’internet",
        {
            "rf7.media_restrictions": ["keyword 'coupure d’internet' (fr)"],
            "rf7.expulsion_of_ngos_and_media": ["keyword 'expulsion des ONG' (fr)"],
        },
    ),
    (
        "fr",
        "Appels au meurtre et discours de haine avant le second tour de l'élection",
        {
            "rf8.incitement": ["keyword 'Appels au meurtre' (fr)", "keyword 'discours de haine' (fr)"],
            "rf8.elections": ["keyword 'second tour' (fr)", "keyword 'élection' (fr)"],
        },
    ),
    (
        "fr",
        "Des miliciens armés ont incendié trois villages ; un charnier découvert",
        {
            "rf7.arms_and_militias": ["keyword 'miliciens' (fr)"],
            "rf11.attack_on_civilians": ["keyword 'charnier' (fr)"],
        },
    ),
    (
        "en",
        "Militia leaders called them cockroaches ahead of the presidential election",
        {
            "rf7.arms_and_militias": ["keyword 'Militia' (en)"],
            "rf8.incitement": ["keyword 'cockroaches' (en)"],
            "rf8.elections": ["keyword 'election' (en)"],
        },
    ),
    ("en", "Grape growers and rapeseed farmers met the drapers", {}),
    (
        "en",
        "Women were raped; a rapist was arrested",
        {"sgbv.sexual_violence": ["keyword 'raped' (en)", "keyword 'rapist' (en)"]},
    ),
    (
        "en",
        "Two aid workers killed as peacekeepers attacked near Bangassou",
        {
            "rf2.killings_reported": ["keyword 'killed' (en)"],
            "rf14.threats_to_humanitarian_and_peacekeeping": [
                "keyword 'aid workers killed' (en)",
                "keyword 'peacekeepers attacked' (en)",
            ],
        },
    ),
    (
        "en",
        "Thousands fled their homes; ethnic tensions rise after the internet shutdown",
        {
            "rf7.media_restrictions": ["keyword 'internet shutdown' (en)"],
            "rf9.intergroup_tensions": ["keyword 'ethnic tensions' (en)"],
            "displacement.forced_displacement": ["keyword 'fled their homes' (en)"],
        },
    ),
    # word boundaries: "election*" does not take "Selection", "displaced" is not "displacement"
    ("en", "The displacement of the hull; power restored in Selection Park", {}),
]


@pytest.mark.parametrize(("language", "text", "expected"), SENTENCES, ids=[s[1][:30] for s in SENTENCES])
def test_sentences(catalogue, language, text, expected):
    assert summary(classify(catalogue, {"language": language, "title": text})) == expected


def test_keywords_follow_the_observation_language(catalogue):
    french = {"title": "Des milliers de déplacés fuient les combats"}
    assert summary(classify(catalogue, french | {"language": "en"})) == {}
    assert summary(classify(catalogue, french | {"language": "fr-CD"})) == summary(
        classify(catalogue, french | {"language": None})
    )


def test_a_language_without_lexicons_tries_every_lexicon(catalogue):
    """Short English headlines are often detected as Latin or Spanish; with no lexicon for that language
    nothing used to match them."""
    english = {"title": "Thousands displaced as fighting spreads"}
    assert summary(classify(catalogue, english | {"language": "la"})) == summary(
        classify(catalogue, english | {"language": "en"})
    )
    assert summary(classify(catalogue, english | {"language": "la"}))


def test_title_and_text_are_both_read_and_phrases_do_not_span_them(catalogue):
    matches = classify(
        catalogue, {"language": "en", "title": "Thousands found in a mass", "text": "grave digging"}
    )
    assert summary(matches) == {}
    matches = classify(catalogue, {"language": "en", "title": "Report", "text": "Gang rape reported in camp"})
    assert summary(matches) == {"sgbv.sexual_violence": ["keyword 'Gang rape' (en)"]}


def test_patterns_and_rule_combination(tmp_path):
    data = {
        "version": 1,
        "indicators": [
            {
                "id": "displacement.test",
                "title": "t",
                "risk_factors": [7],
                "description": "d",
                "sources": ["s"],
                "weight": 2.5,
                "match": {
                    "cameo": {"event": {"201": "Engage in mass expulsion"}},
                    "ucdp_violence_types": [3],
                    "min_deaths": 1,
                    "keywords": {"en": {"patterns": [r"fled (?:their|the) (?:homes?|villages?)"]}},
                },
            }
        ],
    }
    catalogue = parse_catalogue(data, base_dir=tmp_path)
    assert classify(
        catalogue,
        {
            "event_codes": ["cameo:201"],
            "violence_type": 3,
            "fatalities": 1,
            "language": "en",
            "text": "Families FLED THE VILLAGES at night",
        },
    ) == [
        Match(
            "displacement.test",
            2.5,
            [
                "cameo:201 Engage in mass expulsion",
                "ucdp violence type 3 with 1 death",
                "pattern 'fled (?:their|the) (?:homes?|villages?)' matched 'FLED THE VILLAGES' (en)",
            ],
        )
    ]
    assert classify(catalogue, {"violence_type": 3, "fatalities": 0}) == []
    assert classify(catalogue, {"language": "en", "text": "refled the villages"}) == []


def test_matchers_are_compiled_once_per_catalogue(catalogue):
    first = matchers(catalogue)
    classify(catalogue, {"language": "en", "title": "election"})
    assert matchers(catalogue) is first
    assert len(first) == len(catalogue.enabled()) == 28
    assert all(len(m.languages) in (0, 2) for m in first)


def test_external_lexicon_terms_are_matched_with_their_origin(tmp_path):
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext/slurs.en.txt").write_text("# stand-in for an external list\nbadword\n")
    data = {
        "version": 1,
        "external_lexicons": {
            "demo": {"description": "d", "licence": "l", "files": {"en": "slurs.en.txt"}, "format": "lines"}
        },
        "indicators": [
            {
                "id": "rf8.demo",
                "title": "t",
                "risk_factors": [8],
                "description": "d",
                "sources": ["s"],
                "weight": 1,
                "match": {"keywords": {"en": {"external": ["demo"]}}},
            }
        ],
    }
    catalogue = parse_catalogue(
        data, base_dir=packaged_catalogue_path().parent, external_dir=tmp_path / "ext"
    )
    assert summary(classify(catalogue, {"language": "en", "text": "He used a BadWord."})) == {
        "rf8.demo": ["keyword 'BadWord' (en, demo)"]
    }


def test_civilians_killed_in_any_type_of_violence(catalogue):
    """A state-based event that killed 52 civilians (a chemical attack is type 1) raised nothing when
    civilian harm was read from one-sided violence only."""
    chemical = {
        "violence_type": 1,
        "fatalities": 60,
        "civilian_fatalities": 52,
        "source_type": "CONFLICT_DATA",
    }
    assert summary(classify(catalogue, chemical)) == {
        "rf1.armed_conflict": ["ucdp violence type 1 with 60 deaths"],
        "rf2.civilians_killed": ["52 civilians killed (at least 1)"],
    }
    (match,) = [m for m in classify(catalogue, chemical) if m.indicator_id == "rf2.civilians_killed"]
    assert match.deaths == "civilians"  # its signal counts the 52, not the 60


def test_deaths_from_disease_or_disaster_are_not_killings(catalogue):
    for title in ("Cholera outbreak kills 27 in south Sudan", "La rougeole tue 37 enfants dans le nord"):
        assert "rf2.killings_reported" not in summary(classify(catalogue, {"title": title}))
    assert summary(classify(catalogue, {"title": "Gunmen kill 12 villagers in Jonglei"})) == {
        "rf2.killings_reported": ["keyword 'kill' (en)"]
    }


def test_text_indicators_do_not_read_curated_data_notes(catalogue):
    notes = {"source_type": "CONFLICT_DATA", "violence_type": 1, "title": "Fighting: 12 soldiers killed"}
    assert set(summary(classify(catalogue, notes))) == {"rf1.armed_conflict"}
    news = notes | {"source_type": "NEWS", "violence_type": None}
    assert set(summary(classify(catalogue, news))) == {"rf1.fighting_reported", "rf2.killings_reported"}


@pytest.mark.parametrize(
    ("text", "indicator", "reason"),
    [
        ("Soldiers mutiny in Juba after failed coup", "rf3.state_weakness", "keyword 'mutiny' (en)"),
        ("Tentative de putsch à Bangui", "rf3.state_weakness", "keyword 'Tentative de putsch' (fr)"),
        ("Revenge attack leaves five dead in Unity", "rf4.motives", "keyword 'Revenge attack' (en)"),
        ("Représailles contre les Peuls", "rf4.motives", "keyword 'Représailles' (fr)"),
        ("Arms shipments reach militias in Jonglei", "rf5.capacity", "keyword 'Arms shipments' (en)"),
        ("Recrutement d'enfants soldats", "rf5.capacity", "keyword 'Recrutement d'enfants' (fr)"),
        ("UNAMID denied access to conflict areas", "rf6.mitigation_removed", "keyword 'denied access' (en)"),
        ("Observateurs expulsés du pays", "rf6.mitigation_removed", "keyword 'Observateurs expulsés' (fr)"),
        ("Tribe vows to exterminate rival group", "rf10.intent_to_destroy", "keyword 'exterminate' (en)"),
        ("Mosquées incendiées à Boda", "rf10.intent_to_destroy", "keyword 'Mosquées incendiées' (fr)"),
        ("Militia leaders drew up kill lists", "rf12.plan_or_policy", "keyword 'kill lists' (en)"),
        ("Milices progouvernementales", "rf12.plan_or_policy", "keyword 'Milices progouvernementales' (fr)"),
    ],
)  # fmt: skip
def test_the_six_risk_factors_added_to_the_framework_coverage(catalogue, text, indicator, reason):
    assert reason in summary(classify(catalogue, {"title": text})).get(indicator, [])


def test_every_report_of_a_text_source_counts_in_the_volume(catalogue):
    """The denominator of the share rules: every report, whatever it says, but no curated data."""
    ids = lambda o: [m.indicator_id for m in classify(catalogue, o)]  # noqa: E731
    assert ids({"title": "Market prices in Juba", "source_type": "NEWS"}) == ["volume.reports"]
    assert "volume.reports" in ids({"title": "Fighting kills 37", "source_type": "UN_REPORT"})
    assert "volume.reports" not in ids({"violence_type": 1, "source_type": "CONFLICT_DATA"})
    assert "volume.reports" not in ids({"event_codes": ["cameo:190"], "source_type": "EVENT_DATA"})
