"""Language detection: cheap evidence, lingua, the memory knob, the default language."""

from __future__ import annotations

from pathlib import Path

import pytest

from inbox.triage import Intent, Triager, load_rules
from tests.inbox.triage.conftest import classify_row, labelled_rows


def test_low_accuracy_detection_alone_still_names_the_labelled_languages() -> None:
    """The memory knob (lingua's low-accuracy mode only, a small part of the models' memory) costs little accuracy."""
    rules = load_rules()
    low_only = rules.model_copy(
        update={
            "detection": rules.detection.model_copy(update={"short_text_chars": 0, "low_accuracy_min_confidence": 0.0})
        }
    )
    triager = Triager(low_only)
    rows = labelled_rows()
    hits = [classify_row(triager, row).language == row["language"] for row in rows]
    assert triager.detector._high is None, "the high-accuracy models were loaded after all"
    print(f"\nlow-accuracy mode only: language right for {sum(hits)} of {len(rows)} ({sum(hits) / len(rows):.1%})")
    assert sum(hits) / len(rows) >= 0.97


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


@pytest.mark.parametrize("text", ["", "   ", "😍😍😍", "👍", "http://example.com", "@someone", "12345 !!!"])
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
