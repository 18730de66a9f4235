"""Normalisation: the one form customer text and listed terms are compared in."""

from __future__ import annotations

import pytest

from inbox.triage import normalize
from inbox.triage.text import prepare, shouting


def test_normalize_strips_accents_and_case() -> None:
    assert normalize("ȘȚĂÂÎ șţăâî Remboursé ŒUVRE ’") == "staai staai rembourse oeuvre '"


def test_prepare_keeps_links_for_patterns_and_words_for_matching() -> None:
    prepared = prepare("@Shop ma commande n'est pas arrivée http://bit.ly/x #Retard", max_chars=4000)
    assert prepared.tokens == ["ma", "commande", "n", "est", "pas", "arrivee", "retard"]  # a tag's word still counts
    assert "http://bit.ly/x" in prepared.full  # spam patterns look at links
    assert "@Shop" not in prepared.detect and "http" not in prepared.detect and "#Retard" not in prepared.detect
    assert "arrivée" in prepared.detect  # the detector gets the text as written
    assert prepare("Colis perdu depuis trois semaines", max_chars=11).tokens == ["colis", "perdu"]


@pytest.mark.parametrize(
    ("text", "shouted"),
    [
        ("my parcel is late!!", True),  # a run of two "!"
        ("my parcel is late!", False),
        ("MY PARCEL IS LATE", True),  # two capital words of 4+ letters (PARCEL, LATE)
        ("MY PARCEL is late", False),  # MY is too short to count
        ("ÎNTÂRZIERE INACCEPTABILĂ", True),  # Latin letters beyond ASCII count too
        ("UPS and DHL", False),
    ],
)
def test_shouting(text: str, shouted: bool) -> None:
    assert shouting(text, exclamation_run=2, min_caps_words=2, min_word_length=4) is shouted
