"""Matching listed terms: longest phrase first, prefixes, accents, case and apostrophes not mattering."""

from __future__ import annotations

import pytest

from inbox.triage import Intent, Triager
from inbox.triage.matcher import NEGATIVE, NEUTRAL, POSITIVE, Entry, Matcher
from inbox.triage.text import words_of

TERMS: list[tuple[str, Entry]] = [
    ("merci", (POSITIVE, "fr", 1.0)),
    ("merci pour rien", (NEGATIVE, "fr", 2.0)),
    ("adresse", ("delivery", "fr", 1.0)),
    ("mauvaise adresse", ("delivery", "fr", 2.0)),
    ("mauvaise", (NEGATIVE, "fr", 1.0)),
    ("rembours*", ("billing", "fr", 1.0)),
    ("remboursement", (NEGATIVE, "fr", 0.5)),
    ("thanks", (POSITIVE, "en", 1.0)),
    ("thanks in advance", (NEUTRAL, "en", 1.0)),
]


def _find(text: str) -> list[tuple[int, str, set[Entry]]]:
    return [(index, key, set(entries)) for index, key, entries in Matcher(TERMS).find(words_of(text))]


def test_the_longest_phrase_wins_for_what_it_says() -> None:
    # "merci pour rien" says the sentiment: its "merci" does not count as positive
    assert _find("Merci pour rien !") == [(0, "merci pour rien", {(NEGATIVE, "fr", 2.0)})]
    assert _find("merci pour tout") == [(0, "merci", {(POSITIVE, "fr", 1.0)})]


def test_words_inside_a_phrase_still_count_for_what_it_does_not_say() -> None:
    # a delivery phrase; its "mauvaise" still says negative, its "adresse" no more delivery
    assert _find("mauvaise adresse") == [(0, "mauvaise adresse", {("delivery", "fr", 2.0), (NEGATIVE, "fr", 1.0)})]


def test_a_prefix_completes_an_exact_word_and_neutral_phrases_silence_their_words() -> None:
    assert _find("Remboursez-moi") == [(0, "remboursez", {("billing", "fr", 1.0)})]
    assert _find("remboursement") == [(0, "remboursement", {(NEGATIVE, "fr", 0.5), ("billing", "fr", 1.0)})]
    assert _find("Thanks in advance!") == [(0, "thanks in advance", {(NEUTRAL, "en", 1.0)})]


@pytest.mark.parametrize(
    "variants",
    [
        ("Toujours pas remboursé !", "Toujours pas rembourse !", "TOUJOURS PAS REMBOURSÉ !"),
        ("Unde este comanda mea? Curierul nu a venit", "Unde este comanda mea? Curierul nu a venit".upper()),
        ("Mi-ați luat banii de două ori", "Mi-ati luat banii de doua ori", "mi ati luat banii de doua ori"),
        ("Livrare întârziată", "Livrare intarziata"),
        ("ma commande n'est jamais arrivée", "ma commande nest jamais arrivee", "Ma commande n’est jamais arrivée"),
    ],
)
def test_matching_ignores_accents_case_and_apostrophes(triager: Triager, variants: tuple[str, ...]) -> None:
    results = {triager.classify(text).intent for text in variants}
    assert len(results) == 1
    assert results.pop() in (Intent.BILLING, Intent.DELIVERY)
