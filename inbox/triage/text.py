"""Text normalisation: the one form that customer text and listed terms are both compared in.

Case-folded, accents stripped ("remboursé" == "rembourse" == "REMBOURSE", "livrată" ==
"livrata", "ș" == "s"), apostrophes and hyphens treated as spaces. A token is a word, an emoji
or a punctuation mark. URLs, @handles and #tags are noise for the words and for the language.
Customer text is only ever data: it is never evaluated or formatted.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = [
    "CLAUSE_PUNCT",
    "Guarded",
    "Prepared",
    "both_cases",
    "has_letter",
    "normalize",
    "prepare",
    "shouting",
    "tokenize",
    "words_of",
]


class Guarded:
    """A regular expression searched only in texts where a cheaper one, its guard, matches.

    The regex engine scans fast for a pattern's first character class, but tries every position of a
    pattern that starts with an assertion ("not after a letter") or a repeat. The guard must match
    wherever the pattern does (the pattern less its leading assertion, say) and start with a
    character class: most texts never reach the slow scan, and what is found is the same.
    """

    __slots__ = ("guard", "pattern")

    def __init__(self, pattern: str, guard: str) -> None:
        self.pattern = re.compile(pattern)
        self.guard = re.compile(guard)

    def search(self, text: str) -> re.Match[str] | None:
        """``pattern.search``, skipped where the guard finds nothing."""
        return self.pattern.search(text) if self.guard.search(text) else None

    def findall(self, text: str) -> list[str]:
        """``pattern.findall``, skipped where the guard finds nothing."""
        return self.pattern.findall(text) if self.guard.search(text) else []


_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE_RE = re.compile(r"(?<![\w@])@\w+(?:@[\w.-]+\w)?")  # @user and Mastodon's @user@host
_TAG_RE = re.compile(r"(?<![\w#])#\w+")
_NOISE_RE = re.compile(f"{_URL_RE.pattern}|{_HANDLE_RE.pattern}", re.IGNORECASE)
_DETECT_NOISE_RE = re.compile(f"{_URL_RE.pattern}|{_HANDLE_RE.pattern}|{_TAG_RE.pattern}", re.IGNORECASE)
# Combining marks, zero-width joiner, emoji variation selector and skin tones: all noise here.
_MARKS_RE = re.compile("[\u0300-\u036f\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")
_SPECIAL = str.maketrans(
    {"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i", "’": "'", "‘": "'", "`": "'", "´": "'"}
)
_SPECIAL_RE = re.compile("[" + "".join(chr(code) for code in _SPECIAL) + "]")  # what `_SPECIAL` changes
_TOKEN_RE = re.compile(r"\w+|[^\w\s'\-‐‑–]")
_LETTER_RE = re.compile(r"[^\W\d_]")
# Runs of capital letters (Latin scripts); isupper() then confirms the whole word is capitals.
_UPPERISH = "A-Z\u00c0-\u00de\u0100-\u017f\u0218-\u021b"
_CAPS_WORD_RE = Guarded(f"(?<![^\\W\\d_])[{_UPPERISH}]{{2}}[^\\W\\d_]*", f"[{_UPPERISH}][{_UPPERISH}]")
CLAUSE_PUNCT = frozenset(".,;:!?…")


def normalize(text: str) -> str:
    """Case-folded, accent-free form used on both sides of every match."""
    if text.isascii():  # most traffic; nothing to decompose, and "`" is the one ASCII letter `_SPECIAL` maps
        lowered = text.lower()
        return lowered.translate(_SPECIAL) if "`" in lowered else lowered
    folded = _MARKS_RE.sub("", unicodedata.normalize("NFKD", text.casefold()))
    return folded.translate(_SPECIAL) if _SPECIAL_RE.search(folded) else folded  # (a scan, not a lookup a letter)


def tokenize(normalized: str) -> list[str]:
    """Words, emoji and punctuation marks of an already normalised text."""
    return _TOKEN_RE.findall(normalized)


def words_of(text: str) -> list[str]:
    """The tokens of a listed term or word, normalised as customer text is."""
    return tokenize(normalize(text))


def both_cases(chars: str) -> frozenset[str]:
    """The characters in both cases; 'ß'.upper() is 'SS', so only single-letter case pairs count."""
    out = set(chars)
    for char in chars:
        out.update(c for c in (char.lower(), char.upper()) if len(c) == 1)
    return frozenset(out)


def has_letter(text: str) -> bool:
    """Whether the text holds any letter at all (emoji, digits and punctuation say no language)."""
    return _LETTER_RE.search(text) is not None


@dataclass(slots=True)
class Prepared:
    """One message prepared once for every step."""

    detect: str  # original text without URLs, handles, hashtags (for the detector)
    full: str  # normalised, URLs included (for patterns)
    tokens: list[str]  # normalised words/emoji/punctuation without URLs and handles


def prepare(text: str, max_chars: int) -> Prepared:
    """The message's first ``max_chars`` characters in the forms detection and matching use."""
    text = text[:max_chars]
    full = normalize(text)
    if "@" in text or "#" in text or "://" in text or "www." in full:
        tokens = tokenize(_NOISE_RE.sub(" ", full).replace("#", " "))
        detect = _DETECT_NOISE_RE.sub(" ", text)
    else:
        tokens = tokenize(full)
        detect = text
    return Prepared(detect, full, tokens)


def shouting(text: str, *, exclamation_run: int, min_caps_words: int, min_word_length: int) -> bool:
    """A run of "!" or enough ALL-CAPS words of at least ``min_word_length`` letters."""
    if "!" * exclamation_run in text:
        return True
    caps = 0
    for word in _CAPS_WORD_RE.findall(text):
        if len(word) >= min_word_length and word.isupper():
            caps += 1
            if caps >= min_caps_words:
                return True
    return False
