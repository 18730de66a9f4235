"""The CSAT rating parser over answers as customers write them, and which conversations may be asked."""

from __future__ import annotations

import pytest

from inbox.csat import may_ask, parse_rating

RATINGS = [
    # digits and "out of 5"
    ("5", "en", 5),
    (" 4 ", "en", 4),
    ("5!", "en", 5),
    ("4.", "fr", 4),
    ("3,0", "fr", 3),
    ("5/5", "en", 5),
    ("4 / 5", "en", 4),
    ("4 sur 5", "fr", 4),
    ("5 sur 5 !", "fr", 5),
    ("4 din 5", "ro", 4),
    ("3 out of 5", "en", 3),
    ("4 de 5", "es", 4),
    ("3 von 5", "de", 3),
    ("5 étoiles", "fr", 5),
    ("3 stele", "ro", 3),
    ("4 stars", "en", 4),
    ("5*", "en", 5),
    ("10/10", "en", 5),
    ("0/10", "en", 1),
    ("nota 10", "ro", 5),
    # stars and thumbs
    ("5⭐", "en", 5),
    ("4 ⭐", "fr", 4),
    ("⭐⭐⭐⭐", "fr", 4),
    ("⭐️⭐️⭐️⭐️⭐️", "ro", 5),
    ("★★★☆☆", "en", 3),
    ("👍", "fr", 5),
    ("👍🏽", "en", 5),
    ("👎", "ro", 1),
    # words, with thanks and punctuation around them
    ("Parfait", "fr", 5),
    ("parfait, merci !", "fr", 5),
    ("NUL", "fr", 1),
    ("Super", "en", 5),
    ("super merci", "fr", 5),
    ("très bien", "fr", 5),
    ("tres bien", "fr", 5),
    ("bof", "fr", 3),
    ("pas terrible", "fr", 2),
    ("excelent", "ro", 5),
    ("Mulțumesc, excelent!", "ro", 5),
    ("foarte bine", "ro", 5),
    ("groaznic", "ro", 1),
    ("slab", "ro", 2),
    ("great, thanks", "en", 5),
    ("terrible", "en", 1),
    ("Perfecto, gracias", "es", 5),
    ("sehr gut", "de", 5),
    ("schlecht", "de", 2),
    ("ottimo", "it", 5),
    ("péssimo", "pt", 1),
    ("prima", "nl", 4),
    ("awesome", "fr", 5),
    ("@acme 5", "en", 5),  # a reply on Mastodon starts with the handles it answers
    ("@acme@mastodon.social @bob ⭐⭐⭐", "en", 3),  # English counts in every conversation
    # not a rating: a normal follow-up
    ("5 minutes later still nothing", "en", None),
    ("I waited 5 days", "en", None),
    ("order 5 never arrived", "en", None),
    ("3 items missing", "en", None),
    ("1 question", "en", None),
    ("6", "en", None),
    ("0", "en", None),
    ("10", "en", None),
    ("7/10", "en", None),
    ("5/12", "en", None),
    ("24/7", "en", None),
    ("4 or 5", "en", None),
    ("4-5", "en", None),
    ("5?", "en", None),
    ("super slow", "en", None),
    ("super déçu", "fr", None),
    ("pas parfait", "fr", None),
    ("not bad", "en", None),
    ("ok", "en", None),
    ("merci", "fr", None),
    ("thanks", "en", None),
    ("👍👍", "en", None),
    ("👍 but the parcel is still missing", "en", None),
    ("nul besoin de rappeler", "fr", None),
    ("⭐⭐⭐⭐⭐⭐", "en", None),
    ("Where is my refund?", "en", None),
    ("prost", "fr", None),  # Romanian "bad", but a French conversation
    ("prost", "ro", 2),
    ("", "en", None),
    ("@acme", "en", None),
    ("5" + " " * 10 + "and here is a long story about my parcel", "en", None),
]


@pytest.mark.parametrize(("text", "language", "score"), RATINGS)
def test_a_message_is_a_rating_only_when_it_is_nothing_else(text: str, language: str, score: int | None) -> None:
    assert parse_rating(text, language) == score


@pytest.mark.parametrize(
    ("connector_type", "kind", "asked"),
    [
        ("x", "dm", True),
        ("x", "mention", False),  # a public post: never a public question
        ("mastodon", "dm", True),
        ("reddit", "comment", False),
        ("webhook", "mention", True),  # the reply goes back to the system that sent it
        ("webhook", "review", False),
        ("google_reviews", "review", False),
        ("trustpilot", "review", False),
    ],
)
def test_questions_go_only_where_the_customer_answers_in_private(connector_type: str, kind: str, asked: bool) -> None:
    assert may_ask(connector_type, kind) is asked
