"""Triage rules: the shipped files, an admin's file merged over them, every problem by key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from inbox.triage import Intent, RulesError, Triager, load_rules, shipped_config
from inbox.triage import rules as rules_module
from tests.inbox.triage.conftest import CORE_LANGUAGES


def test_shipped_rules_cover_the_core_languages() -> None:
    rules = load_rules()
    for language in CORE_LANGUAGES:
        lexicon = rules.lexicon[language]
        assert lexicon.positive and lexicon.negative and lexicon.negations and lexicon.stopwords
        assert {intent for intent in lexicon.intents} >= {
            Intent.DELIVERY,
            Intent.BILLING,
            Intent.QUESTION,
            Intent.COMPLAINT,
            Intent.PRAISE,
            Intent.SPAM,
        }


def test_admin_file_merges_into_defaults(tmp_path: Path) -> None:
    text = "Le colis de ma chronopizza est resté au dépôt"
    before = Triager(load_rules())
    override = tmp_path / "brand.toml"
    override.write_text(
        """
languages = ["fr", "en"]          # arrays replace
[lexicon.fr.intents.complaint]
"chronopizza" = 9                 # tables merge: a new term...
[lexicon.fr.intents.delivery]
"colis" = 0                       # ...and weight 0 removes a shipped one
""",
        encoding="utf-8",
    )
    rules = load_rules(override)
    assert rules.languages == ["fr", "en"]
    assert rules.lexicon["fr"].intents[Intent.COMPLAINT]["chronopizza"] == 9
    shipped = load_rules()
    assert (
        rules.lexicon["fr"].intents[Intent.DELIVERY]["livreur"]
        == shipped.lexicon["fr"].intents[Intent.DELIVERY]["livreur"]
    )
    assert rules.lexicon["ro"] == load_rules().lexicon["ro"]  # untouched languages stay
    assert before.classify(text).intent is Intent.DELIVERY
    assert Triager(rules).classify(text).intent is Intent.COMPLAINT


def test_bad_rules_file_lists_every_problem_by_key_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        """
languages = ["en", "fr", "xx"]
default_language = "ro"
[detection]
speed = "fast"
[sentiment]
negation_window = "three"
[priority.base]
delivery = "asap"
[lexicon.en.intents.refunds]
"money back" = 3
[lexicon.en.patterns.spam]
"(unclosed" = 1
[lexicon.en.positive]
"gre*at" = 1
"***" = 1
[lexicon.en]
neutral = ["thanks", "kind*regards"]
[lexicon.klingon.negative]
"bad" = 1
""",
        encoding="utf-8",
    )
    with pytest.raises(RulesError) as caught:
        load_rules(bad)
    error = caught.value
    assert isinstance(error, ValueError)
    message = str(error)
    for path in (
        "languages[2]",
        "default_language",
        "detection.speed",
        "sentiment.negation_window",
        "priority.base.delivery",
        "lexicon.en.intents.refunds",
        'lexicon.en.patterns.spam."(unclosed"',
        'lexicon.en.positive."gre*at"',
        'lexicon.en.positive."***"',
        "lexicon.klingon",
        "lexicon.en.neutral[1]",
    ):
        assert path in message, f"{path} missing from:\n{message}"
    assert "lexicon.en.neutral[0]" not in message
    assert len(error.problems) >= 11


def test_rules_syntax_error_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text("[lexicon.en\n", encoding="utf-8")
    with pytest.raises(RulesError, match="syntax"):
        load_rules(broken)
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- lexicon files


def test_each_language_ships_in_a_lexicon_file_of_its_own() -> None:
    config = shipped_config()
    folder = config.joinpath("triage").joinpath("lexicons")
    codes = []
    for entry in folder.iterdir():
        code = entry.name.removesuffix(".toml")
        data = tomllib.loads(entry.read_text(encoding="utf-8"))
        assert set(data) == {"lexicon"} and set(data["lexicon"]) == {code}, entry.name
        codes.append(code)
    rules = load_rules()
    assert sorted(codes) == sorted(rules.languages)
    rules_file = tomllib.loads(config.joinpath("triage.toml").read_text(encoding="utf-8"))
    assert set(rules_file["lexicon"]) == {"common"}  # what is not per language stays in the rules file
    assert list(rules.lexicon) == ["common", *rules.languages]  # merged in the order of `languages`


def _config_folder(root: Path, rules: str, lexicons: dict[str, str]) -> Path:
    (root / "triage" / "lexicons").mkdir(parents=True)
    (root / "triage.toml").write_text(rules, encoding="utf-8")
    for name, text in lexicons.items():
        (root / "triage" / "lexicons" / name).write_text(text, encoding="utf-8")
    return root


def test_lexicon_files_merge_in_the_order_of_languages_then_by_name(tmp_path: Path) -> None:
    folder = _config_folder(
        tmp_path,
        'languages = ["ro", "de"]\n[lexicon.common]\nstopwords = ["x"]\n',
        {
            name: f'[lexicon.{name[:2]}]\nstopwords = ["{name[:2]}"]\n'
            for name in ("de.toml", "en.toml", "fr.toml", "ro.toml")
        }
        | {"README.txt": "not a lexicon"},
    )
    data = rules_module._shipped_data(folder)
    assert list(data["lexicon"]) == ["common", "ro", "de", "en", "fr"]
    assert data["lexicon"]["fr"] == {"stopwords": ["fr"]}


def test_a_lexicon_file_holds_only_its_own_language(tmp_path: Path) -> None:
    folder = _config_folder(
        tmp_path,
        'languages = ["fr"]\n',
        {
            "fr.toml": 'languages = ["fr", "en"]\n[lexicon.fr.positive]\n"merci" = 1\n[lexicon.en.positive]\n"thanks" = 1\n',
        },
    )
    with pytest.raises(RulesError) as caught:
        rules_module._shipped_data(folder)
    assert caught.value.source == "inbox.config/triage/lexicons/fr.toml"
    assert [problem.split(":")[0] for problem in caught.value.problems] == ["languages", "lexicon.en"]


def test_an_admin_file_overrides_terms_patterns_and_weights_wherever_they_ship(tmp_path: Path) -> None:
    link = "(?:https?://|www\\.)\\S+"
    override = tmp_path / "brand.toml"
    override.write_text(
        f"""
[sentiment]
shout_factor = 2.0
[lexicon.common.patterns.spam]
'{link}' = 0
[lexicon.nl.negative]
"slecht" = 4
""",
        encoding="utf-8",
    )
    shipped, rules = load_rules(), load_rules(override)
    assert shipped.lexicon["common"].patterns[Intent.SPAM][link] == 1
    assert rules.lexicon["common"].patterns[Intent.SPAM][link] == 0
    assert rules.sentiment.shout_factor == 2.0 != shipped.sentiment.shout_factor
    assert rules.lexicon["nl"].negative["slecht"] == 4 != shipped.lexicon["nl"].negative["slecht"]
    assert {**rules.lexicon["nl"].negative, "slecht": 0} == {**shipped.lexicon["nl"].negative, "slecht": 0}
    assert rules.lexicon["en"] == shipped.lexicon["en"]
