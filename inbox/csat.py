"""CSAT, pure logic: is a customer's message a 1-5 rating, and may a conversation be asked for one.

A message counts as a rating only when the WHOLE message is one (after a thanks word and trailing punctuation are
dropped): a bare 1-5, "X/5" and its wordings, 10/10, stars, a single thumb, or a word or short phrase listed below
for the conversation's language or English. Anything else (a digit inside a sentence, "5?", "super slow", "ok") is
a normal follow-up. The research behind the lists: docs/notes/reports/NOTES.md, section 4.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from inbox.connector import CHANNELS, Kind

# Connector types whose items stand for another system's conversation: the reply goes back to that system (a
# webhook's reply_url, a jsonl replies file), which shows it to the customer privately, so any kind but a review
# may be asked there. Every other type asks on direct messages only, never under a public post.
GENERIC_TYPES = frozenset({"webhook", "jsonl"})
# Every connector type: a platform of the channel registry, or a generic type that stands for one.
CHANNEL_TYPES = sorted({*CHANNELS, *GENERIC_TYPES})

# After case and diacritics are folded (é→e, ș/ş→s, ț/ţ→t, ß→ss) and spaces collapsed.
WORDS: dict[str, dict[int, tuple[str, ...]]] = {
    "en": {
        5: (
            "excellent",
            "perfect",
            "great",
            "awesome",
            "amazing",
            "super",
            "fantastic",
            "brilliant",
            "very good",
            "top",
            "outstanding",
            "loved it",
            "five stars",
        ),
        4: ("good", "pretty good", "very nice", "nice", "four stars"),
        3: ("average", "so so", "so-so", "meh", "fair"),
        2: ("poor", "bad", "not good", "not great", "disappointing"),
        1: ("terrible", "awful", "horrible", "useless", "very bad", "the worst", "worst", "rubbish", "appalling"),
    },
    "fr": {
        5: (
            "parfait",
            "parfaite",
            "excellent",
            "excellente",
            "super",
            "genial",
            "geniale",
            "top",
            "au top",
            "tres bien",
            "impeccable",
            "nickel",
            "extra",
        ),
        4: ("bien", "bon", "bonne", "plutot bien", "pas mal", "tres correct"),
        3: ("moyen", "moyenne", "bof", "correct", "passable", "mouais"),
        2: ("pas terrible", "pas top", "decevant", "decevante", "mauvais", "mauvaise", "pas bien"),
        1: (
            "nul",
            "nulle",
            "tres mauvais",
            "tres mauvaise",
            "horrible",
            "catastrophique",
            "lamentable",
            "zero",
            "honteux",
        ),
    },
    "ro": {
        5: (
            "perfect",
            "excelent",
            "super",
            "foarte bine",
            "minunat",
            "genial",
            "nota 10",
            "de nota 10",
            "extraordinar",
            "top",
        ),
        4: ("bine", "bun", "buna", "destul de bine", "multumit", "multumita"),
        3: ("asa si asa", "mediu", "acceptabil", "potrivit"),
        2: ("slab", "nu prea bine", "dezamagitor", "nemultumit", "nemultumita", "prost"),
        1: ("groaznic", "oribil", "foarte rau", "jalnic", "praf", "dezastru", "foarte prost", "penibil"),
    },
    "es": {
        5: ("excelente", "perfecto", "perfecta", "genial", "muy bien", "estupendo", "fantastico", "super", "top"),
        4: ("bien", "bueno", "buena", "bastante bien"),
        3: ("regular", "normal", "mas o menos"),
        2: ("mal", "malo", "mala", "decepcionante"),
        1: ("fatal", "pesimo", "pesima", "horrible", "terrible", "muy mal", "un desastre"),
    },
    "de": {
        5: ("super", "perfekt", "ausgezeichnet", "hervorragend", "sehr gut", "toll", "spitze", "klasse", "top"),
        4: ("gut", "ganz gut", "prima"),
        3: ("okay", "geht so", "mittel", "mittelmassig", "durchschnittlich"),
        2: ("schlecht", "nicht gut", "enttauschend"),
        1: ("sehr schlecht", "schrecklich", "furchtbar", "katastrophal", "miserabel", "unmoglich"),
    },
    "it": {
        5: ("perfetto", "perfetta", "ottimo", "ottima", "eccellente", "benissimo", "fantastico", "super", "top"),
        4: ("bene", "buono", "buona", "molto bene"),
        3: ("cosi cosi", "discreto", "nella media"),
        2: ("male", "scarso", "deludente", "non bene"),
        1: ("pessimo", "pessima", "malissimo", "orribile", "terribile", "vergognoso"),
    },
    "pt": {
        5: ("perfeito", "perfeita", "excelente", "otimo", "otima", "muito bom", "muito bem", "maravilhoso", "top"),
        4: ("bom", "boa", "bem"),
        3: ("razoavel", "mais ou menos", "normal"),
        2: ("mau", "ma", "fraco", "ruim", "decepcionante"),
        1: ("pessimo", "pessima", "horrivel", "terrivel", "muito mau", "muito ruim"),
    },
    "nl": {
        5: ("perfect", "uitstekend", "top", "super", "geweldig", "heel goed", "fantastisch"),
        4: ("goed", "prima", "best goed"),
        3: ("redelijk", "matig", "gaat wel"),
        2: ("slecht", "niet goed", "teleurstellend"),
        1: ("heel slecht", "waardeloos", "vreselijk", "verschrikkelijk", "belabberd"),
    },
}
# Words that are ratings in every language (an emoji is read before these).
_ANY_LANGUAGE = "en"
_THANKS = (
    r"(?:merci(?: beaucoup)?|thanks?(?: you)?|thx|ty|mersi|multumesc|multumim|gracias|danke(?: schon)?|grazie"
    r"|obrigad[oa]|dank ?je(?: wel)?|bedankt)"
)
_STAR_FULL = "\u2b50\u2605\U0001f31f"  # ⭐ ★ 🌟
_STAR_EMPTY = "\u2606"  # ☆
_THUMBS = {"\U0001f44d": 5, "\U0001f44e": 1}  # 👍 👎
_MODIFIERS = re.compile("[\U0001f3fb-\U0001f3ff\ufe0f\u200d]")  # skin tones, emoji presentation, joiners
_NUMBER = r"([1-5])(?:[.,]0)?"
_OUT_OF_5 = re.compile(rf"{_NUMBER}\s*(?:/|sur|din|out of|of|pe|de|von|su|uit|van)\s*5")
_OUT_OF_10 = re.compile(r"(10|0)\s*(?:/|sur|din|out of|of|de|von|su|uit|van)\s*10")
_BARE = re.compile(
    rf"{_NUMBER}(?:\s*(?:stars?|etoiles?|stele|stea|estrellas?|sterne?|stelle|estrelas?|sterren|\*|[{_STAR_FULL}]))?"
)
# Replies on Mastodon, X and Bluesky start with the @handles they answer: not part of the rating.
_LEADING_MENTIONS = re.compile(r"^(?:@[\w.@-]+[\s,:]*)+")
_MAX_CHARS = 40  # longer than any rating people write; a longer message is a follow-up


def _fold(text: str) -> str:
    text = text.lower().replace("ß", "ss")
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text).strip()


def _phrases() -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for language, levels in WORDS.items():
        table[language] = {_fold(word): score for score, words in levels.items() for word in words}
    return table


_PHRASES = _phrases()


def parse_rating(text: str, language: str | None = None) -> int | None:
    """The 1-5 score `text` gives, or None when the message is not only a rating.

    Words count in `language` (the conversation's) and in English: "prost" is "bad" in Romanian, "cheers" in French.
    """
    t = _LEADING_MENTIONS.sub("", _MODIFIERS.sub("", text or "").strip()).strip()
    if not t or len(t) > _MAX_CHARS or "?" in t:
        return None
    compact = re.sub(r"\s", "", t)
    if all(c in _STAR_FULL + _STAR_EMPTY for c in compact):
        filled = sum(c in _STAR_FULL for c in compact)
        return filled if 1 <= filled <= 5 else None
    if compact in _THUMBS:
        return _THUMBS[compact]
    folded = _fold(t)
    folded = re.sub(rf"(?:^|[\s,.!]+)\b{_THANKS}\b(?:[\s,.!]+|$)", " ", folded)
    folded = re.sub(r"\s+", " ", folded).strip(" ,;:-!.")
    for pattern in (_OUT_OF_5, _BARE):
        match = pattern.fullmatch(folded)
        if match:
            return int(match.group(1))
    match = _OUT_OF_10.fullmatch(folded)
    if match:
        return 5 if match.group(1) == "10" else 1
    for lang in dict.fromkeys([(language or _ANY_LANGUAGE).lower(), _ANY_LANGUAGE]):
        score = _PHRASES.get(lang, {}).get(folded)
        if score is not None:
            return score
    return None


def is_review_site(connector_type: str) -> bool:
    """True for a type whose items are all public reviews: a question there cannot be answered in private."""
    channel = CHANNELS.get(connector_type)
    return channel is not None and channel.kinds == frozenset({Kind.REVIEW})


def askable_types(known: Iterable[str]) -> list[str]:
    """The connector types among `known` on which a question may be asked (the default of `[csat] channels`)."""
    return [t for t in known if not is_review_site(t)]


def may_ask(connector_type: str, kind: str) -> bool:
    """Whether a conversation of this kind on this type may get the question: in private, never under a review."""
    if kind == Kind.REVIEW or is_review_site(connector_type):
        return False
    return connector_type in GENERIC_TYPES or kind == Kind.DM


def satisfied(score: int) -> bool:
    """An answer of 4 or 5: what CSAT % counts."""
    return score >= 4
