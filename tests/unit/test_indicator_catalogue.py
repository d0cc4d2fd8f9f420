"""The indicator catalogue: the packaged catalogue, its CAMEO mappings, and exact validation messages."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import pytest

from tests.conftest import SHARED, needs_shared_data
from tocsin.pipelines.indicators import CatalogueError, classify, load_catalogue, parse_catalogue
from tocsin.pipelines.indicators.catalogue import packaged_catalogue_path

PACKAGE = packaged_catalogue_path().parent
HURTLEX_DIR = SHARED / "lexicons"  # non-commercial licence: never committed


def test_packaged_catalogue_loads_and_covers_the_required_risk_factors():
    catalogue = load_catalogue()
    assert [i.id for i in catalogue.indicators] == [
        "rf1.armed_conflict",
        "rf1.fighting_reported",
        "rf1.violent_unrest",
        "rf2.violence_against_civilians",
        "rf2.civilians_killed",
        "rf2.killings_reported",
        "rf3.state_weakness",
        "rf4.motives",
        "rf5.capacity",
        "rf6.mitigation_removed",
        "rf7.emergency_measures",
        "rf7.security_mobilisation",
        "rf7.arms_and_militias",
        "rf7.media_restrictions",
        "rf7.expulsion_of_ngos_and_media",
        "rf7.destruction_of_property",
        "rf8.incitement",
        "rf8.hate_terms_external",
        "rf8.attacks_on_leaders",
        "rf8.elections",
        "rf9.intergroup_tensions",
        "rf10.intent_to_destroy",
        "rf11.attack_on_civilians",
        "rf12.plan_or_policy",
        "rf13.threats_of_violence",
        "rf14.threats_to_humanitarian_and_peacekeeping",
        "volume.reports",
        "sgbv.sexual_violence",
        "displacement.forced_displacement",
    ]
    enabled = catalogue.enabled()
    covered = {rf for i in enabled for rf in i.risk_factors}
    assert covered == set(range(1, 15))  # all 14 risk factors of the Framework of Analysis
    themes = {i.id.split(".")[0] for i in enabled}
    assert {"sgbv", "displacement"} <= themes
    # The only disabled indicator is the one needing the non-commercial external lexicon.
    assert [i.id for i in catalogue.indicators if not i.enabled] == ["rf8.hate_terms_external"]
    # Every keyword language of the project's indicators is resolved from its own lexicons, EN and FR.
    for indicator in enabled:
        assert indicator.sources
        if indicator.match.keywords:
            assert set(catalogue.terms(indicator.id)) == {"en", "fr"}
            assert all(catalogue.terms(indicator.id).values())


def test_the_required_topics_have_cameo_ucdp_or_keyword_rules():
    catalogue = load_catalogue()
    kinds = {
        i.id: (
            bool(i.match.cameo),
            bool(i.match.ucdp_violence_types),
            sorted(k for kw in i.match.keywords.values() for k in kw.lexicons),
        )
        for i in catalogue.enabled()
    }
    assert kinds["rf1.armed_conflict"] == (True, True, [])
    assert kinds["rf2.violence_against_civilians"] == (True, True, [])
    assert kinds["rf7.expulsion_of_ngos_and_media"] == (True, False, ["expulsion_ngos_media"] * 2)
    assert kinds["rf7.arms_and_militias"] == (False, False, ["militias_arms"] * 2)
    assert kinds["rf8.incitement"] == (False, False, ["incitement"] * 2)
    assert kinds["rf8.elections"] == (False, False, ["elections"] * 2)
    assert kinds["rf11.attack_on_civilians"] == (True, True, ["mass_atrocity"] * 2)
    assert kinds["rf14.threats_to_humanitarian_and_peacekeeping"] == (
        True,
        False,
        ["humanitarian_attacks"] * 2,
    )
    assert kinds["sgbv.sexual_violence"] == (True, False, ["sexual_violence"] * 2)
    assert kinds["displacement.forced_displacement"] == (True, False, ["displacement"] * 2)
    assert kinds["rf2.killings_reported"] == (False, False, ["killing"] * 2)
    assert kinds["rf1.fighting_reported"] == (False, False, ["fighting"] * 2)
    civilians = catalogue.by_id("rf2.civilians_killed")
    assert (civilians.match.min_civilian_deaths, civilians.deaths) == (1, "civilians")


@needs_shared_data  # the table comes from a GPL-3.0 project (gdeltPyR): not committed here
def test_every_cameo_code_carries_its_exact_codebook_description():
    """Each code and description is checked against the GDELT CAMEO table (whitespace normalised)."""
    table = json.loads((SHARED / "gdelt2/reference/cameoCodes_gdeltPyR.json").read_text())["Description"]
    checked = 0
    for indicator in load_catalogue().indicators:
        cameo = indicator.match.cameo
        if cameo is None:
            continue
        for codes in (cameo.event, cameo.base, cameo.root):
            for code, description in codes.items():
                assert code in table, f"{indicator.id}: {code} is not a CAMEO code"
                assert description == " ".join(table[code].split()), f"{indicator.id}: {code}"
                checked += 1
    assert checked == 38


def test_bundled_lexicons_are_the_projects_own_and_documented():
    files = sorted(p.name for p in (PACKAGE / "lexicons").iterdir())
    topics = {
        "discrimination",
        "capacity",
        "displacement",
        "elections",
        "expulsion_ngos_media",
        "fighting",
        "humanitarian_attacks",
        "incitement",
        "intent_to_destroy",
        "killing",
        "mass_atrocity",
        "media_restrictions",
        "militias_arms",
        "mitigation_removed",
        "motives",
        "natural_causes",
        "plan_or_policy",
        "sexual_violence",
        "state_weakness",
    }
    assert files == sorted(f"{t}.{lang}.txt" for t in topics for lang in ("en", "fr"))
    for name in files:
        lines = (PACKAGE / "lexicons" / name).read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("# "), name  # source and rationale first
        # hand-written lists, short enough to review term by term (a dumped lexicon runs to thousands)
        assert len([t for t in lines if t.strip() and not t.startswith("#")]) <= 60, name
    # Nothing of the non-commercial external lexicons is ever in the package.
    assert not list(PACKAGE.rglob("*.tsv"))


def test_catalogue_survives_pickling_for_beam_workers():
    catalogue = load_catalogue()
    copy_ = pickle.loads(pickle.dumps(catalogue))
    observation = {"language": "fr", "title": "Des milliers de déplacés fuient les combats"}
    assert classify(copy_, observation) == classify(catalogue, observation)


# ------------------------------------------------------------------------------------------ validation


def indicator(**overrides):
    base = {
        "id": "rf1.test",
        "title": "Test",
        "risk_factors": [1],
        "framework_indicators": ["1.1"],
        "description": "A test indicator.",
        "sources": ["[FoA] 1.1"],
        "weight": 1.0,
        "match": {"cameo": {"root": {"19": "FIGHT"}}},
    }
    return base | overrides


def document(*indicators, **top):
    return {"version": 1, "indicators": list(indicators) or [indicator()]} | top


def errors_of(data, base_dir: Path = PACKAGE, **kwargs) -> list[str]:
    with pytest.raises(CatalogueError) as caught:
        parse_catalogue(data, base_dir=base_dir, **kwargs)
    return caught.value.errors


CASES = [
    (
        {"id": "RF1.Test"},
        "indicators.0.id: indicator id 'RF1.Test' is not rf<N>.<snake_name> or <theme>.<snake_name>",
    ),
    (
        {"id": "rf1test"},
        "indicators.0.id: indicator id 'rf1test' is not rf<N>.<snake_name> or <theme>.<snake_name>",
    ),
    (
        {"id": "rf15.test"},
        "indicators.0.id: indicator id 'rf15.test' names risk factor 15; risk factors are 1-14",
    ),
    (
        {"id": "rf2.test"},
        "indicators.0: indicator id 'rf2.test' names risk factor 2, which is not in risk_factors [1]",
    ),
    (
        {"risk_factors": [1, 0]},
        "indicators.0.risk_factors.1: risk factor 0 does not exist: the Framework has risk factors 1-14",
    ),
    (
        {"risk_factors": []},
        "indicators.0: risk_factors: at least one is needed (only an every_report indicator has none)",
    ),
    (
        {"framework_indicators": ["7"]},
        "indicators.0.framework_indicators.0: "
        "framework indicator '7' is not <risk factor 1-14>.<number> (e.g. '7.3')",
    ),
    (
        {"framework_indicators": ["7.3"]},
        "indicators.0: framework indicator '7.3' belongs to risk factor 7, which is not in risk_factors [1]",
    ),
    ({"weight": 0}, "indicators.0.weight: Input should be greater than 0"),
    ({"weight": -1.5}, "indicators.0.weight: Input should be greater than 0"),
    ({"sources": []}, "indicators.0.sources: List should have at least 1 item after validation, not 0"),
    ({"owner": "me"}, "indicators.0.owner: Extra inputs are not permitted"),
    ({"title": ""}, "indicators.0.title: String should have at least 1 character"),
    (
        {"match": {"cameo": {"event": {202: "Engage in mass killings"}}}},
        "indicators.0.match.cameo.event.202: CAMEO codes must be quoted strings ('190', not 190)",
    ),
    (
        {"match": {"cameo": {"event": {"12345": "x"}}}},
        "indicators.0.match.cameo.event.12345: CAMEO event code '12345' is not 2-4 digits",
    ),
    (
        {"match": {"cameo": {"base": {"19": "FIGHT"}}}},
        "indicators.0.match.cameo.base.19: CAMEO base code '19' is not 3 digits",
    ),
    (
        {"match": {"cameo": {"root": {"1a": "x"}}}},
        "indicators.0.match.cameo.root.1a: CAMEO root code '1a' is not 2 digits",
    ),
    ({"match": {"cameo": {}}}, "indicators.0.match.cameo: cameo lists no event, base or root codes"),
    (
        {"match": {"cameo": {"root": {"19": ""}}}},
        "indicators.0.match.cameo.root.19: String should have at least 1 character",
    ),
    (
        {"match": {"cameo": {"events": {"190": "x"}}}},
        "indicators.0.match.cameo.events: Extra inputs are not permitted",
    ),
    (
        {"match": {"ucdp_violence_types": [4]}},
        "indicators.0.match.ucdp_violence_types.0: UCDP type of violence 4 does not exist: 1 state-based, "
        "2 non-state, 3 one-sided",
    ),
    (
        {"match": {"ucdp_violence_types": [3], "min_deaths": -1}},
        "indicators.0.match.min_deaths: Input should be greater than or equal to 0",
    ),
    (
        {"match": {"min_deaths": 5, "keywords": {"en": {"lexicons": ["elections"]}}}},
        "indicators.0.match: min_deaths needs ucdp_violence_types",
    ),
    (
        {"match": {"ucdp_violence_types": [1], "goldstein_max": -5}},
        "indicators.0.match: goldstein_max needs cameo codes",
    ),
    (
        {"match": {"cameo": {"root": {"19": "FIGHT"}}, "goldstein_max": -11}},
        "indicators.0.match.goldstein_max: Input should be greater than or equal to -10",
    ),
    (
        {"match": {}},
        "indicators.0.match: match needs at least one of cameo, ucdp_violence_types, min_civilian_deaths, "
        "keywords",
    ),
    (
        {"match": {"keywords": {"english": {"lexicons": ["elections"]}}}},
        "indicators.0.match.keywords.english: language 'english' is not an ISO 639-1 code",
    ),
    (
        {"match": {"keywords": {"en": {}}}},
        "indicators.0.match.keywords.en: keywords list no lexicons, external lexicons or patterns",
    ),
    (
        {"match": {"keywords": {"en": ["elections"]}}},
        "indicators.0.match.keywords.en: Input should be a valid dictionary or instance of Keywords",
    ),
    (
        {"match": {"keywords": {"en": {"lexicons": ["Elections.txt"]}}}},
        "indicators.0.match.keywords.en.lexicons.0: lexicon name 'Elections.txt' is not a snake_case name",
    ),
    (
        {"match": {"keywords": {"en": {"patterns": ["fled (their homes"]}}}},
        "indicators.0.match.keywords.en.patterns.0: invalid regular expression 'fled (their homes': "
        "missing ), unterminated subpattern at position 5",
    ),
    (
        {"match": {"keywords": {"fr": {"lexicons": ["no_such_topic"]}}}},
        "indicators.0.match.keywords.fr.lexicons.0: lexicon file lexicons/no_such_topic.fr.txt not found",
    ),
    (
        {"match": {"keywords": {"de": {"lexicons": ["elections"]}}}},
        "indicators.0.match.keywords.de.lexicons.0: lexicon file lexicons/elections.de.txt not found",
    ),
    (
        {"match": {"keywords": {"en": {"external": ["hatebase"]}}}},
        "indicators.0.match.keywords.en.external.0: external lexicon 'hatebase' is not declared",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), CASES, ids=[c[1].split(": ", 1)[0] for c in CASES])
def test_each_config_error_has_its_exact_message(overrides, message):
    assert errors_of(document(indicator(**overrides))) == [message]


def test_all_errors_are_listed_together_in_document_order():
    assert errors_of(
        document(
            indicator(id="rf1.a", weight=0),
            indicator(id="rf1.b", risk_factors=[1, 99], colour="red"),
            indicator(id="rf1.a"),
            indicator(id="rf1.c", match={"keywords": {"fr": {"lexicons": ["missing"], "patterns": ["(("]}}}),
            colour="blue",
        )
    ) == [
        "colour: Extra inputs are not permitted",
        "indicators.0.weight: Input should be greater than 0",
        "indicators.1.risk_factors.1: risk factor 99 does not exist: the Framework has risk factors 1-14",
        "indicators.1.colour: Extra inputs are not permitted",
        "indicators.2.id: duplicate indicator id 'rf1.a' (first at indicators.0)",
        "indicators.3.match.keywords.fr.patterns.0: invalid regular expression '((': "
        "missing ), unterminated subpattern at position 1",
    ]


def test_top_level_errors():
    assert errors_of({"indicators": []}) == [
        "version: Field required",
        "indicators: List should have at least 1 item after validation, not 0",
    ]
    assert errors_of(["not", "a", "mapping"]) == ["<root>: the catalogue must be a mapping"]
    assert errors_of(document(), enable=["rf9.nothing"]) == [
        "enable: no indicator 'rf9.nothing' in the catalogue"
    ]


def test_invalid_yaml_is_reported(tmp_path):
    path = tmp_path / "catalogue.yaml"
    path.write_text("version: 1\nindicators: [\n")
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(path)
    assert caught.value.errors[0].startswith("<root>: invalid YAML: while parsing a flow node")


def test_lexicon_file_problems_are_reported_with_file_and_line(tmp_path):
    (tmp_path / "lexicons").mkdir()
    (tmp_path / "lexicons/bad.en.txt").write_text("# header\nfled *\nmass*acre\nok term\n")
    (tmp_path / "lexicons/empty.en.txt").write_text("# nothing but comments\n\n")
    data = document(indicator(match={"keywords": {"en": {"lexicons": ["bad", "empty"]}}}))
    assert errors_of(data, base_dir=tmp_path) == [
        "indicators.0.match.keywords.en.lexicons.0: lexicons/bad.en.txt line 2: 'fled *': "
        "'*' is allowed only at the end of a word",
        "indicators.0.match.keywords.en.lexicons.0: lexicons/bad.en.txt line 3: 'mass*acre': "
        "'*' is allowed only at the end of a word",
        "indicators.0.match.keywords.en.lexicons.1: lexicons/empty.en.txt has no terms",
    ]


def test_lexicon_dir_is_configurable(tmp_path):
    (tmp_path / "words").mkdir()
    (tmp_path / "words/topic.en.txt").write_text("# test\nÉlan Vital\n")
    data = document(indicator(match={"keywords": {"en": {"lexicons": ["topic"]}}}), lexicon_dir="words")
    catalogue = parse_catalogue(data, base_dir=tmp_path)
    assert [t.text for t in catalogue.terms("rf1.test")["en"]] == ["elan vital"]


# ------------------------------------------------------------------------------------------ external lexicons

HURTLEX = {
    "description": "HurtLex 1.2",
    "licence": "CC BY-NC-SA 4.0",
    "files": {"en": "hurtlex_1.2/hurtlex_EN.tsv", "fr": "hurtlex_1.2/hurtlex_FR.tsv"},
    "format": "tsv",
    "term_column": "lemma",
    "where": {"category": ["ps"], "level": ["conservative"]},
}


def external_doc(enabled: bool, languages=("en",), spec=HURTLEX):
    keywords = {lang: {"external": ["hurtlex"]} for lang in languages}
    ind = indicator(id="rf8.slurs", risk_factors=[8], framework_indicators=["8.7"], enabled=enabled)
    ind["match"] = {"keywords": keywords}
    return document(ind, external_lexicons={"hurtlex": copy.deepcopy(spec)})


def test_missing_external_lexicon_is_an_error_only_for_an_enabled_indicator(tmp_path, monkeypatch):
    monkeypatch.delenv("TOCSIN_EXTERNAL_LEXICONS", raising=False)
    catalogue = parse_catalogue(external_doc(enabled=False), base_dir=PACKAGE)
    assert catalogue.terms("rf8.slurs") == {"en": ()}
    assert classify(catalogue, {"language": "en", "title": "anything"}) == []
    assert errors_of(external_doc(enabled=True)) == [
        "indicators.0.match.keywords.en.external.0: external lexicon 'hurtlex' needs a directory: "
        "pass external_dir or set TOCSIN_EXTERNAL_LEXICONS"
    ]
    assert errors_of(external_doc(enabled=True), external_dir=tmp_path) == [
        f"indicators.0.match.keywords.en.external.0: external lexicon 'hurtlex' (en) not found: "
        f"{tmp_path / 'hurtlex_1.2/hurtlex_EN.tsv'}"
    ]
    # enable= switches on a disabled indicator, which then needs its lexicon
    assert errors_of(external_doc(enabled=False), enable=["rf8.slurs"]) == [
        "indicators.0.match.keywords.en.external.0: external lexicon 'hurtlex' needs a directory: "
        "pass external_dir or set TOCSIN_EXTERNAL_LEXICONS"
    ]


def test_external_lexicon_declaration_errors():
    assert errors_of(external_doc(enabled=False, languages=("de",))) == [
        "indicators.0.match.keywords.de.external.0: external lexicon 'hurtlex' has no file for 'de'"
    ]
    no_column = HURTLEX | {"term_column": None}
    assert errors_of(external_doc(enabled=False, spec=no_column)) == [
        "external_lexicons.hurtlex: term_column is required for format tsv"
    ]


@needs_shared_data
def test_external_hurtlex_loads_by_path_when_enabled(monkeypatch):
    monkeypatch.delenv("TOCSIN_EXTERNAL_LEXICONS", raising=False)
    catalogue = load_catalogue(external_dir=HURTLEX_DIR, enable=["rf8.hate_terms_external"])
    terms = catalogue.terms("rf8.hate_terms_external")
    # HurtLex 1.2, category ps (negative stereotypes, ethnic slurs), level conservative, folded, deduplicated
    assert {lang: len(t) for lang, t in terms.items()} == {"en": 148, "fr": 97}
    assert all(t.origin == "hurtlex" for t in terms["en"])
    # the same directory through the environment
    monkeypatch.setenv("TOCSIN_EXTERNAL_LEXICONS", str(HURTLEX_DIR))
    assert load_catalogue(enable=["rf8.hate_terms_external"]).terms("rf8.hate_terms_external") == terms
