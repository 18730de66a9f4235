"""Language detection: cheap evidence, lingua with the shipped model, the high-accuracy knob, the default language."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from inbox.triage import Intent, Triager, load_rules
from inbox.triage.corpus import load_corpus, split

SHORT_TEXTS = Path(__file__).parent / "data" / "short_texts.jsonl"


def short_rows() -> list[dict[str, str]]:
    """200 short messages (at most 40 characters, 25 per language), written apart from the corpus."""
    return [json.loads(line) for line in SHORT_TEXTS.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_the_short_text_set_is_short_balanced_and_apart_from_the_corpus() -> None:
    rows = short_rows()
    assert all(len(row["text"]) <= 40 for row in rows)
    assert Counter(row["language"] for row in rows) == dict.fromkeys(load_rules().languages, 25)
    corpus = {example.text.casefold() for example in load_corpus()}
    assert not [row["text"] for row in rows if row["text"].casefold() in corpus]


def test_short_texts_are_named_right_without_the_high_accuracy_models() -> None:
    """The shipped rules: lingua's low-accuracy mode and the shipped model, never the 200-300 MB models."""
    triager = Triager(load_rules())
    rows = short_rows()
    misses = [
        (row["language"], got, row["text"])
        for row in rows
        if (got := triager.detect_language(row["text"])) != row["language"]
    ]
    assert triager.detector._high is None, "the high-accuracy models were loaded"
    print(f"\nshort texts: language right for {len(rows) - len(misses)} of {len(rows)}; misses: {misses}")
    assert (len(rows) - len(misses)) / len(rows) >= 0.97


def test_held_out_language_accuracy_stays_above_the_floor() -> None:
    triager = Triager(load_rules())
    held = split(load_corpus())[1]
    hits = sum(triager.detect_language(example.text) == example.language for example in held)
    print(f"\nheld-out: language right for {hits} of {len(held)} ({hits / len(held):.1%})")
    assert hits / len(held) >= 0.97


def test_short_text_chars_still_sends_short_texts_to_the_high_accuracy_models(tmp_path: Path) -> None:
    """The rules keep the choice: an admin who wants lingua's high-accuracy mode for short texts gets it."""
    override = tmp_path / "rules.toml"
    override.write_text('languages = ["fr", "en"]\n[detection]\nshort_text_chars = 40\n', encoding="utf-8")
    triager = Triager(load_rules(override))
    assert triager.detect_language("the longer texts still need no more than the fast models") == "en"
    assert triager.detector._high is None
    assert triager.detect_language("Colis perdu") == "fr"
    assert triager.detector._high is not None


def test_the_model_only_joins_when_it_knows_every_configured_language(tmp_path: Path) -> None:
    override = tmp_path / "rules.toml"
    override.write_text('languages = ["fr", "en", "pl"]\n', encoding="utf-8")
    triager = Triager(load_rules(override))
    assert triager.detect_language("Gdzie jest moja paczka") == "pl"
    assert triager.detector._use_model is False
    assert Triager(load_rules()).detector._model() is not None


def test_links_handles_and_tags_do_not_decide_the_language(triager: Triager) -> None:
    text = "@TheEnglishShop http://www.the-english-shop.co.uk/orders #customerservice ma commande n'est pas arrivée"
    assert triager.detect_language(text) == "fr"


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Mulțumesc frumos!", "ro"),
        ("merci beaucoup !!", "fr"),
        ("thanks so much!", "en"),
        ("¿Dónde está mi pedido?", "es"),
        ("Wo ist meine Bestellung?", "de"),
        ("Dov'è il mio ordine?", "it"),
        ("Cadê a minha encomenda?", "pt"),
        ("Waar blijft mijn pakket?", "nl"),
    ],
)
def test_short_texts_in_each_language(triager: Triager, text: str, language: str) -> None:
    assert triager.detect_language(text) == language


@pytest.mark.parametrize("text", ["", "   ", "😍😍😍", "👍", "http://example.com", "@someone", "12345 !!!", "привет"])
def test_undetectable_text_gets_the_default_language(tmp_path: Path, text: str) -> None:
    assert Triager(load_rules()).detect_language(text) == "en"
    override = tmp_path / "rules.toml"
    override.write_text('default_language = "ro"\n', encoding="utf-8")
    assert Triager(load_rules(override)).detect_language(text) == "ro"


def test_a_single_configured_language_needs_no_detector(tmp_path: Path) -> None:
    override = tmp_path / "fr-only.toml"
    override.write_text('languages = ["fr"]\ndefault_language = "fr"\n', encoding="utf-8")
    triager = Triager(load_rules(override))
    assert triager.detect_language("where is my parcel, it is very late") == "fr"
    assert triager.classify("where is my parcel, it is very late").intent is Intent.DELIVERY
