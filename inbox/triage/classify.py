"""Triage of one customer message: language, sentiment, intent and priority.

Pure logic, no database and no network. Everything tunable lives in a rules file
(``config/triage.toml`` ships the defaults, see its comments for every knob).

Rules files and the merge rule
    ``load_rules()`` returns the shipped defaults. ``load_rules(path)`` reads an admin's
    file and deep-merges it INTO the defaults: tables merge key by key (recursively), any
    other value (number, string, array) replaces the default. So an admin adds or re-weights
    single terms (``[lexicon.fr.intents.delivery] "point relais" = 2``), removes a shipped
    term by giving it weight 0, adds a whole language with a new ``[lexicon.xx]`` table, and
    replaces arrays (``languages``, ``stopwords``, ``negations``, ``intents.precedence``)
    wholesale. A bad file raises ``RulesError`` listing every problem by key path.

Language
    URLs, @handles and #tags are stripped first. Cheap evidence decides when it is clear:
    stopwords unique to one configured language, and letters only one of them uses (ă ș ț
    are Romanian, ß German, ñ Spanish). Otherwise lingua, restricted to the configured
    languages and built lazily once per Triager: its fast low-accuracy mode for longer
    texts, its high-accuracy mode for short texts or when the fast mode is unsure. Nothing
    detectable (empty, emoji only) gives ``default_language``.

Matching
    Text and terms are compared after the same normalisation: case-folded, accents
    stripped ("remboursé" == "rembourse" == "REMBOURSE", "livrată" == "livrata", "ș" == "s"),
    apostrophes and hyphens treated as spaces. A term is a word, an emoji, a punctuation
    mark ("?") or a phrase of several words; a trailing ``*`` on a single word matches any
    word starting with it ("rembours*"). The longest listed phrase wins at a position and
    its words do not count again for what the phrase says ("merci pour rien" is negative,
    its "merci" is not positive); ``neutral`` phrases ("thanks in advance") silence their
    words entirely.
    ``patterns`` are regular expressions searched in the whole normalised text (URLs
    included), for spam links and the like. Terms of the detected language count fully,
    ``[lexicon.common]`` counts for every language, and terms of the other languages count
    with ``intents.foreign_weight`` (customers mix languages and short texts get
    misdetected). Customer text is only ever data: it is never evaluated or formatted.

Intent precedence
    Each intent scores the sum of its distinct matched terms' weights. The sentiment then
    steers: when positive, ``intents.when_positive`` adds/multiplies (praise up, problems
    down); when negative, ``intents.when_negative`` does (complaint up, praise to zero:
    "thanks for nothing"). The highest score at or above its ``min_score`` wins; ties go to
    the earlier intent in ``intents.precedence``; nothing qualifying gives ``other``.

Priority
    Start from ``priority.base[intent]``, add levels for a furious text (very negative or
    shouted), the star rating, escalation terms (legal threats, safety), the channel kind
    and the item's age, capped at urgent. A negative item (negative sentiment or a rating at
    or below ``priority.floor_rating``) is never below normal. Spam is always low.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any, Literal

from lingua import IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder
from pydantic import BaseModel, ConfigDict, Field, ValidationError

__all__ = [
    "Intent",
    "Priority",
    "RulesError",
    "Sentiment",
    "TriageResult",
    "TriageRules",
    "Triager",
    "load_rules",
    "normalize",
    "shipped_config",
]

Sentiment = Literal["negative", "neutral", "positive"]


class Intent(StrEnum):
    """What the customer wants; exactly one per item."""

    DELIVERY = "delivery"
    BILLING = "billing"
    QUESTION = "question"
    COMPLAINT = "complaint"
    PRAISE = "praise"
    SPAM = "spam"
    OTHER = "other"


class Priority(StrEnum):
    """How soon an agent should look at the item."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Sort key: low=0, normal=1, high=2, urgent=3."""
        return _PRIORITY_ORDER.index(self)


_PRIORITY_ORDER: tuple[Priority, ...] = tuple(Priority)


@dataclass(frozen=True, slots=True)
class TriageResult:
    """The triage of one item."""

    language: str
    sentiment: Sentiment
    intent: Intent
    priority: Priority


class RulesError(ValueError):
    """A rules file that cannot be used; ``problems`` holds one 'key.path: message' each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"invalid triage rules in {source}:\n" + "\n".join(f"  {p}" for p in problems))


# --------------------------------------------------------------------------- rules model

Weights = dict[str, Annotated[float, Field(ge=0.0)]]  # term -> weight; 0 removes a shipped term


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DetectionRules(_Model):
    """How the language is detected."""

    max_chars: int = Field(200, ge=20)
    short_text_chars: int = Field(40, ge=0)
    low_accuracy_min_confidence: float = Field(0.6, ge=0.0, le=1.0)
    evidence_min: float = Field(2.0, gt=0.0)
    evidence_margin: float = Field(2.0, ge=0.0)
    hint_weight: float = Field(2.0, ge=0.0)
    hints: dict[str, str] = {}


class SentimentRules(_Model):
    """Thresholds turning the sentiment score into a label."""

    negative_at: float = -1.0
    positive_at: float = 1.0
    negation_window: int = Field(3, ge=0)
    shout_factor: float = Field(1.5, ge=1.0)
    shout_min_caps_words: int = Field(2, ge=1)
    shout_min_word_length: int = Field(4, ge=2)
    exclamation_run: int = Field(2, ge=2)
    rating_scores: dict[int, float] = {1: -3.0, 2: -2.0, 3: 0.0, 4: 2.0, 5: 3.0}


class Adjustment(_Model):
    """Score changes applied to intents when the sentiment has a given sign."""

    add: dict[Intent, float] = {}
    multiply: dict[Intent, float] = {}


class IntentRules(_Model):
    """How intent scores become one intent."""

    precedence: list[Intent] = [
        Intent.SPAM, Intent.BILLING, Intent.DELIVERY, Intent.COMPLAINT,
        Intent.QUESTION, Intent.PRAISE, Intent.OTHER,
    ]
    foreign_weight: float = Field(0.5, ge=0.0, le=1.0)
    default_min_score: float = Field(1.0, gt=0.0)
    min_score: dict[Intent, float] = {}
    when_positive: Adjustment = Adjustment()
    when_negative: Adjustment = Adjustment()


class PriorityRules(_Model):
    """Thresholds for the priority levels."""

    base: dict[Intent, Priority] = {}
    furious_score: float = -3.0
    furious_bump: int = Field(1, ge=0)
    rating_bump: dict[int, int] = {}
    kind_bump: dict[str, int] = {}
    age_bumps: dict[float, int] = {}
    age_applies_to: list[Intent] = []
    floor_rating: int = Field(2, ge=0)


class Lexicon(_Model):
    """Word lists of one language (or ``common``: every language)."""

    stopwords: list[str] = []
    negations: list[str] = []
    clause_breaks: list[str] = []
    neutral: list[str] = []
    positive: Weights = {}
    negative: Weights = {}
    escalation: Weights = {}
    intents: dict[Intent, Weights] = {}
    patterns: dict[Intent, Weights] = {}


class TriageRules(_Model):
    """Everything ``config/triage.toml`` holds, validated."""

    default_language: str = "en"
    languages: list[str] = Field(["en", "fr", "ro", "es", "de", "it", "pt", "nl"], min_length=1)
    max_text_chars: int = Field(4000, ge=100)
    detection: DetectionRules = DetectionRules()
    sentiment: SentimentRules = SentimentRules()
    intents: IntentRules = IntentRules()
    priority: PriorityRules = PriorityRules()
    lexicon: dict[str, Lexicon] = {}


# --------------------------------------------------------------------------- loading

_DEFAULTS_NAME = "triage.toml"


def shipped_config() -> Traversable:
    """The shipped ``inbox.config`` data folder (triage rules, reply templates)."""
    return files("inbox.config")


def _default_text() -> str:
    return shipped_config().joinpath(_DEFAULTS_NAME).read_text(encoding="utf-8")


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(source, [f"(syntax): {exc}"]) from exc


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Tables merge key by key; any other value replaces (see the module docstring)."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _merge(current, value)
        else:
            merged[key] = value
    return merged


def load_rules(path: Path | None = None) -> TriageRules:
    """Shipped default rules, merged with an admin's file when ``path`` is given."""
    data = _parse_toml(_default_text(), f"inbox.config/{_DEFAULTS_NAME}")
    source = f"inbox.config/{_DEFAULTS_NAME}"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(source, [f"(file): cannot read: {exc}"]) from exc
        data = _merge(data, _parse_toml(text, source))
    return validate_rules(data, source)


def validate_rules(data: Mapping[str, Any], source: str = "rules") -> TriageRules:
    """Validate a parsed rules mapping; every problem is reported by key path."""
    problems: list[str] = []
    rules: TriageRules | None = None
    try:
        rules = TriageRules.model_validate(data)
    except ValidationError as exc:
        problems.extend(f"{_key_path(err['loc'])}: {err['msg']}" for err in exc.errors())
    problems.extend(_semantic_problems(data))
    if problems or rules is None:
        raise RulesError(source, list(dict.fromkeys(problems)))
    return rules


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key_path(loc: Iterable[Any]) -> str:
    """Dotted TOML-style key path; list indexes as [i], odd keys quoted."""
    out = ""
    for part in loc:
        if part == "[key]":
            out += " (key)"
        elif isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part)
            text = text if _BARE_KEY.match(text) else '"' + text.replace('"', '\\"') + '"'
            out += ("." if out else "") + text
    return out or "(top)"


def _iso_language(code: str) -> Language | None:
    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except ValueError:
        return None


def _semantic_problems(data: Mapping[str, Any]) -> list[str]:
    """Checks pydantic's types cannot express; tolerant of wrong types (reported elsewhere)."""
    problems: list[str] = []
    languages = data.get("languages")
    if isinstance(languages, list):
        for i, code in enumerate(languages):
            if isinstance(code, str) and (code != code.lower() or _iso_language(code) is None):
                problems.append(f"languages[{i}]: unknown ISO 639-1 language code {code!r}")
    default = data.get("default_language")
    if isinstance(default, str) and isinstance(languages, list) and default not in languages:
        problems.append(f"default_language: {default!r} is not in languages")
    detection = data.get("detection")
    hints = detection.get("hints") if isinstance(detection, Mapping) else None
    if isinstance(hints, Mapping):  # hints of languages left out of `languages` are just unused
        for code in hints:
            if _iso_language(code) is None:
                problems.append(f"{_key_path(('detection', 'hints', code))}: unknown ISO 639-1 language code")
    lexicon = data.get("lexicon")
    if isinstance(lexicon, Mapping):
        for code, lex in lexicon.items():
            if code != "common" and (code != code.lower() or _iso_language(code) is None):
                problems.append(f"{_key_path(('lexicon', code))}: unknown language (use an ISO 639-1 code or 'common')")
            if isinstance(lex, Mapping):
                problems.extend(_lexicon_problems(code, lex))
    return problems


def _lexicon_problems(code: str, lex: Mapping[str, Any]) -> Iterator[str]:
    for table in ("positive", "negative", "escalation"):
        terms = lex.get(table)
        if isinstance(terms, Mapping):
            for term in terms:
                yield from _term_problems(("lexicon", code, table, term), term)
    for group in ("intents", "patterns"):
        by_intent = lex.get(group)
        if not isinstance(by_intent, Mapping):
            continue
        for intent, terms in by_intent.items():
            if not isinstance(terms, Mapping):
                continue
            for term in terms:
                loc = ("lexicon", code, group, intent, term)
                if group == "patterns":
                    try:
                        re.compile(term)
                    except re.error as exc:
                        yield f"{_key_path(loc)}: bad regular expression: {exc}"
                else:
                    yield from _term_problems(loc, term)
    neutral = lex.get("neutral")
    if isinstance(neutral, list):
        for i, term in enumerate(neutral):
            if isinstance(term, str):
                yield from _term_problems(("lexicon", code, "neutral", i), term)
    for table in ("stopwords", "negations", "clause_breaks"):
        words = lex.get(table)
        if isinstance(words, list):
            for i, word in enumerate(words):
                if isinstance(word, str) and not _tokens(normalize(word)):
                    yield f"{_key_path(('lexicon', code, table))}[{i}]: empty after normalisation"


def _term_problems(loc: tuple[str | int, ...], term: str) -> Iterator[str]:
    body = term[:-1] if term.endswith("*") else term
    words = _tokens(normalize(body))
    if not words:
        yield f"{_key_path(loc)}: empty term"
    elif "*" in body:
        yield f"{_key_path(loc)}: '*' is only allowed at the end of a term"
    elif term.endswith("*") and len(words) > 1:
        yield f"{_key_path(loc)}: a trailing '*' only works on a single word"


# --------------------------------------------------------------------------- text helpers

_URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_HANDLE_RE = re.compile(r"(?<![\w@])@\w+(?:@[\w.-]+\w)?")  # @user and Mastodon's @user@host
_TAG_RE = re.compile(r"(?<![\w#])#\w+")
_NOISE_RE = re.compile(f"{_URL_RE.pattern}|{_HANDLE_RE.pattern}", re.IGNORECASE)
_DETECT_NOISE_RE = re.compile(f"{_URL_RE.pattern}|{_HANDLE_RE.pattern}|{_TAG_RE.pattern}", re.IGNORECASE)
# Combining marks, zero-width joiner, emoji variation selector and skin tones: all noise here.
_MARKS_RE = re.compile("[\u0300-\u036f\u200d\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]")
_SPECIAL = str.maketrans({"œ": "oe", "æ": "ae", "ø": "o", "ł": "l", "đ": "d", "ı": "i",
                          "’": "'", "‘": "'", "`": "'", "´": "'"})
_TOKEN_RE = re.compile(r"\w+|[^\w\s'\-‐‑–]")
_LETTER_RE = re.compile(r"[^\W\d_]")
# Runs of capital letters (Latin scripts); isupper() then confirms the whole word is capitals.
_UPPERISH = "A-Z\u00c0-\u00de\u0100-\u017f\u0218-\u021b"
_CAPS_WORD_RE = re.compile(f"(?<![^\\W\\d_])[{_UPPERISH}]{{2}}[^\\W\\d_]*")
_CLAUSE_PUNCT = frozenset(".,;:!?…")


def normalize(text: str) -> str:
    """Case-folded, accent-free form used on both sides of every match."""
    if text.isascii():  # most traffic; nothing to decompose
        return text.lower().translate(_SPECIAL)
    return _MARKS_RE.sub("", unicodedata.normalize("NFKD", text.casefold())).translate(_SPECIAL)


def _both_cases(chars: str) -> frozenset[str]:
    """The characters in both cases; 'ß'.upper() is 'SS', so only single-letter case pairs count."""
    out = set(chars)
    for char in chars:
        out.update(c for c in (char.lower(), char.upper()) if len(c) == 1)
    return frozenset(out)


def _tokens(normalized: str) -> list[str]:
    return _TOKEN_RE.findall(normalized)


# --------------------------------------------------------------------------- matcher

# An entry is (category, language, weight). Categories: "+", "-", "!" (escalation), "0"
# (neutral: a phrase whose words must not count) or an intent.
Entry = tuple[str, str, float]
_POSITIVE, _NEGATIVE, _ESCALATION, _NEUTRAL = "+", "-", "!", "0"
_CACHE_LIMIT = 50_000
_ANY = "\0any"  # key for word sets of languages that have no lexicon


class _Matcher:
    """Finds listed terms in a token list: longest phrase first, then exact word, then prefix.

    A phrase overrides the words inside it for what it says (sentiment, escalation, an
    intent); for what it does not say, the words inside still count: "wrong address" is a
    delivery phrase and its "wrong" still counts as negative.
    """

    def __init__(self, terms: Iterable[tuple[str, Entry]]) -> None:
        exact: dict[str, list[Entry]] = {}
        prefixes: dict[str, list[Entry]] = {}
        for term, entry in terms:
            wildcard = term.endswith("*")
            words = _tokens(normalize(term[:-1] if wildcard else term))
            if words:
                target = prefixes if wildcard else exact
                target.setdefault(words[0] if wildcard else " ".join(words), []).append(entry)
        self._prefixes = {k: tuple(v) for k, v in prefixes.items()}
        self._prefix_lengths = sorted({len(p) for p in prefixes}, reverse=True)
        own = {k: tuple(v) for k, v in exact.items()}
        self._exact = {k: self._with_inner_words(k, v, own) for k, v in own.items()}
        sizes: dict[str, set[int]] = {}
        for key in own:
            words = key.split(" ")
            if len(words) > 1:
                sizes.setdefault(words[0], set()).add(len(words))
        self._phrase_sizes = {word: tuple(sorted(n, reverse=True)) for word, n in sizes.items()}
        self._cache: dict[str, tuple[Entry, ...]] = {}

    def _static(self, word: str, own: Mapping[str, tuple[Entry, ...]]) -> tuple[Entry, ...]:
        """An exact term, completed by the longest matching prefix term for what it does not say."""
        exact = own.get(word, ())
        prefix: tuple[Entry, ...] = ()
        for size in self._prefix_lengths:
            if size <= len(word) and (hit := self._prefixes.get(word[:size])):
                prefix = hit
                break
        if not (exact and prefix):
            return exact or prefix
        groups = {_group(entry[0]) for entry in exact}
        return exact + tuple(entry for entry in prefix if _group(entry[0]) not in groups)

    def _with_inner_words(
        self, key: str, entries: tuple[Entry, ...], own: Mapping[str, tuple[Entry, ...]]
    ) -> tuple[Entry, ...]:
        if any(entry[0] == _NEUTRAL for entry in entries):
            return entries  # "thanks in advance" is politeness: its "thanks" is no praise
        words = key.split(" ")
        groups = {_group(entry[0]) for entry in entries}
        inherited: list[Entry] = []
        for size in range(len(words) - 1, 0, -1):  # longer inner terms first
            level = [
                entry
                for start in range(len(words) - size + 1)
                for entry in self._static(" ".join(words[start:start + size]), own)
                if _group(entry[0]) not in groups
            ]
            inherited.extend(level)
            groups.update(_group(entry[0]) for entry in level)
        return entries + tuple(inherited)

    def _word(self, token: str) -> tuple[Entry, ...]:
        found = self._static(token, self._exact)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()  # bounded memory; the working vocabulary refills it quickly
        self._cache[token] = found
        return found

    def find(self, tokens: list[str]) -> list[tuple[int, str, tuple[Entry, ...]]]:
        """(token index, matched key, entries) for every match, left to right."""
        hits: list[tuple[int, str, tuple[Entry, ...]]] = []
        cache, phrase_sizes = self._cache, self._phrase_sizes
        i, count = 0, len(tokens)
        while i < count:
            token = tokens[i]
            sizes = phrase_sizes.get(token)
            if sizes is not None:
                phrase = self._phrase(tokens, i, sizes)
                if phrase is not None:
                    hits.append((i, phrase[0], phrase[1]))
                    i += phrase[2]
                    continue
            entries = cache.get(token)
            if entries is None:
                entries = self._word(token)
            if entries:
                hits.append((i, token, entries))
            i += 1
        return hits

    def _phrase(
        self, tokens: list[str], start: int, sizes: tuple[int, ...]
    ) -> tuple[str, tuple[Entry, ...], int] | None:
        room = len(tokens) - start
        for size in sizes:
            if size <= room:
                key = " ".join(tokens[start:start + size])
                entries = self._exact.get(key)
                if entries:
                    return key, entries, size
        return None


def _group(category: str) -> str:
    """Positive and negative terms speak about the same thing: the sentiment."""
    return _NEGATIVE if category == _POSITIVE else category


# --------------------------------------------------------------------------- triager


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A matched term's meaning in one language."""

    polarity: float
    negatable: bool
    escalation: float
    intents: tuple[tuple[str, float], ...]


@dataclass(slots=True)
class _Text:
    """One message prepared once for every step."""

    detect: str           # original text without URLs, handles, hashtags (for the detector)
    full: str             # normalised, URLs included (for patterns)
    tokens: list[str]     # normalised words/emoji/punctuation without URLs and handles
    shouting: bool


class Triager:
    """Classifies messages with one set of rules; build once and reuse (it caches)."""

    def __init__(self, rules: TriageRules) -> None:
        self.rules = rules
        self._languages = tuple(rules.languages)
        self._low: LanguageDetector | None = None
        self._high: LanguageDetector | None = None
        self._matcher = _Matcher(self._terms())
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._patterns = self._compile_patterns()
        self._stopwords = self._stopword_languages()
        self._negations = self._word_sets("negations")
        self._breaks = {lang: words | _CLAUSE_PUNCT for lang, words in self._word_sets("clause_breaks").items()}
        self._hints = {
            lang: _both_cases(chars)
            for lang, chars in rules.detection.hints.items()
            if chars and lang in self._languages
        }
        self._any_hint = frozenset().union(*self._hints.values())
        # per intent name: (intent, tie-break rank: higher wins, minimum score)
        order = rules.intents.precedence
        self._intent_info = {
            intent.value: (
                intent,
                -(order.index(intent) if intent in order else len(order)),
                rules.intents.min_score.get(intent, rules.intents.default_min_score),
            )
            for intent in Intent
        }
        self._adjust = {
            sentiment: (
                tuple((i.value, f) for i, f in adjustment.multiply.items()),
                tuple((i.value, f) for i, f in adjustment.add.items()),
            )
            for sentiment, adjustment in (
                ("positive", rules.intents.when_positive),
                ("negative", rules.intents.when_negative),
            )
        }

    # ---- construction helpers

    def _terms(self) -> Iterator[tuple[str, Entry]]:
        for lang, lex in self.rules.lexicon.items():
            tables = ((_POSITIVE, lex.positive), (_NEGATIVE, lex.negative), (_ESCALATION, lex.escalation))
            for category, table in tables:
                for term, weight in table.items():
                    if weight:  # weight 0 is how an admin removes a shipped term
                        yield term, (category, lang, weight)
            for intent, table in lex.intents.items():
                for term, weight in table.items():
                    if weight:
                        yield term, (intent.value, lang, weight)
            for term in lex.neutral:
                yield term, (_NEUTRAL, lang, 1.0)

    def _compile_patterns(self) -> list[tuple[re.Pattern[str], str, str, float]]:
        return [
            (re.compile(pattern), intent.value, lang, weight)
            for lang, lex in self.rules.lexicon.items()
            for intent, table in lex.patterns.items()
            for pattern, weight in table.items()
            if weight
        ]

    def _stopword_languages(self) -> dict[str, str]:
        """Normalised stopword -> language, keeping only words unique to one detectable language."""
        owners: dict[str, set[str]] = {}
        for lang, lex in self.rules.lexicon.items():
            if lang in self._languages:
                for word in lex.stopwords:
                    for token in _tokens(normalize(word)):
                        owners.setdefault(token, set()).add(lang)
        return {word: langs.pop() for word, langs in owners.items() if len(langs) == 1}

    def _word_sets(self, field: str) -> dict[str, frozenset[str]]:
        common = self.rules.lexicon.get("common")
        shared = {t for w in getattr(common, field, []) for t in _tokens(normalize(w))} if common else set()
        sets = {
            lang: frozenset(shared | {t for w in getattr(lex, field) for t in _tokens(normalize(w))})
            for lang, lex in self.rules.lexicon.items()
        }
        sets[_ANY] = frozenset(shared)  # languages without a lexicon of their own
        return sets

    # ---- language

    def _prepare(self, text: str) -> _Text:
        text = text[: self.rules.max_text_chars]
        full = normalize(text)
        if "@" in text or "#" in text or "://" in text or "www." in full:
            tokens = _tokens(_NOISE_RE.sub(" ", full).replace("#", " "))
            detect = _DETECT_NOISE_RE.sub(" ", text)
        else:
            tokens = _tokens(full)
            detect = text
        return _Text(detect, full, tokens, self._shouting(detect))

    def _shouting(self, text: str) -> bool:
        rules = self.rules.sentiment
        if "!" * rules.exclamation_run in text:
            return True
        caps = 0
        for word in _CAPS_WORD_RE.findall(text):
            if len(word) >= rules.shout_min_word_length and word.isupper():
                caps += 1
                if caps >= rules.shout_min_caps_words:
                    return True
        return False

    def detect_language(self, text: str) -> str:
        """ISO 639-1 code (lowercase) of the text's language, or the configured default."""
        return self._language(self._prepare(text))

    def _language(self, prepared: _Text) -> str:
        if len(self._languages) == 1 or not _LETTER_RE.search(prepared.detect):
            return self.rules.default_language  # (with one language, it is the default one)
        cheap = self._cheap_language(prepared)
        return cheap if cheap is not None else self._lingua_language(prepared.detect)

    def _cheap_language(self, prepared: _Text) -> str | None:
        """Stopwords and language-specific letters; decides only when the evidence is clear."""
        rules = self.rules.detection
        evidence: dict[str, float] = {}
        for token in prepared.tokens:
            lang = self._stopwords.get(token)
            if lang is not None:
                evidence[lang] = evidence.get(lang, 0.0) + 1.0
        if not self._any_hint.isdisjoint(prepared.detect):
            for lang, chars in self._hints.items():
                if not chars.isdisjoint(prepared.detect):
                    evidence[lang] = evidence.get(lang, 0.0) + rules.hint_weight
        if not evidence:
            return None
        ranked = sorted(evidence.items(), key=lambda kv: kv[1], reverse=True)
        best, score = ranked[0]
        runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
        if score >= rules.evidence_min and score - runner_up >= rules.evidence_margin:
            return best
        return None

    def _lingua_language(self, text: str) -> str:
        """Low-accuracy lingua for longer texts; high accuracy when short or unsure."""
        rules = self.rules.detection
        sample = " ".join(text.split())[: rules.max_chars]
        if len(sample) > rules.short_text_chars:
            values = self._detector(high=False).compute_language_confidence_values(sample)
            if values and values[0].value >= rules.low_accuracy_min_confidence:
                return values[0].language.iso_code_639_1.name.lower()
        found = self._detector(high=True).detect_language_of(sample)
        return found.iso_code_639_1.name.lower() if found is not None else self.rules.default_language

    def warm_up(self) -> None:
        """Load the language models now (about a second of CPU) rather than in the middle of the first poll."""
        self._detector(high=False)
        if self._needs_high_accuracy():
            self._detector(high=True)

    def warm_up_steps(self) -> list[Callable[[], None]]:
        """`warm_up` in pieces of one language's models each, for a caller that gives the event loop back between them.

        lingua keeps the models it loaded for every detector, so the last piece (building the detectors) is instant.
        """
        high = self._needs_high_accuracy()

        def load(language: Language) -> Callable[[], None]:
            def step() -> None:
                builder = LanguageDetectorBuilder.from_languages(language)
                (builder if high else builder.with_low_accuracy_mode()).with_preloaded_language_models().build()

            return step

        languages = [lang for code in self._languages if (lang := _iso_language(code)) is not None]
        return [*(load(language) for language in languages), self.warm_up]

    def _needs_high_accuracy(self) -> bool:
        return self.rules.detection.short_text_chars > 0 or self.rules.detection.low_accuracy_min_confidence > 0

    def _detector(self, *, high: bool) -> LanguageDetector:
        """Built once per Triager, on first need (loading models takes about a second)."""
        current = self._high if high else self._low
        if current is None:
            langs = [lang for code in self._languages if (lang := _iso_language(code)) is not None]
            builder = LanguageDetectorBuilder.from_languages(*langs)
            if not high:
                builder = builder.with_low_accuracy_mode()
            current = builder.with_preloaded_language_models().build()
            if high:
                self._high = current
            else:
                self._low = current
        return current

    # ---- scoring

    def _resolve(self, key: str, entries: tuple[Entry, ...], language: str) -> _Resolved:
        """What one matched term means in the detected language (cached per term and language)."""
        found = self._resolved.get((key, language))
        if found is not None:
            return found
        foreign = self.rules.intents.foreign_weight
        best: dict[str, float] = {}
        for category, lang, weight in entries:
            if lang != language and lang != "common":
                weight *= foreign
            if weight > best.get(category, 0.0):
                best[category] = weight
        best.pop(_NEUTRAL, None)
        polarity = best.pop(_POSITIVE, 0.0) - best.pop(_NEGATIVE, 0.0)
        escalation = best.pop(_ESCALATION, 0.0)
        negatable = key[0].isalnum() and not any(
            word in (self._negations.get(language) or self._negations[_ANY]) for word in key.split(" ")
        )  # emoji say what they say; a phrase with its own negation ("not bad") is already negated
        found = _Resolved(polarity, negatable, escalation, tuple(best.items()))
        if len(self._resolved) >= _CACHE_LIMIT:
            self._resolved.clear()
        self._resolved[(key, language)] = found
        return found

    def _negated(self, tokens: list[str], index: int, language: str) -> bool:
        """A negation shortly before a term, in the same clause, flips its polarity."""
        negations = self._negations.get(language) or self._negations[_ANY]
        breaks = self._breaks.get(language) or self._breaks[_ANY]
        for position in range(index - 1, max(-1, index - 1 - self.rules.sentiment.negation_window), -1):
            token = tokens[position]
            if token in breaks:
                return False
            if token in negations:
                return True
        return False

    def _score(self, prepared: _Text, language: str) -> tuple[float, dict[str, float], float]:
        """(text sentiment score, intent scores, escalation levels)."""
        sentiment = 0.0
        escalation = 0.0
        intents: dict[str, float] = {}
        seen: set[str] = set()
        for index, key, entries in self._matcher.find(prepared.tokens):
            meaning = self._resolve(key, entries, language)
            if meaning.polarity:
                flip = meaning.negatable and self._negated(prepared.tokens, index, language)
                sentiment += -meaning.polarity if flip else meaning.polarity
            if meaning.escalation > escalation:
                escalation = meaning.escalation
            if meaning.intents and key not in seen:  # each distinct term counts once per intent
                seen.add(key)
                for intent, weight in meaning.intents:
                    intents[intent] = intents.get(intent, 0.0) + weight
        foreign = self.rules.intents.foreign_weight
        for pattern, intent, lang, weight in self._patterns:
            if pattern.search(prepared.full):
                if lang != language and lang != "common":
                    weight *= foreign
                intents[intent] = intents.get(intent, 0.0) + weight
        if prepared.shouting:
            sentiment *= self.rules.sentiment.shout_factor
        return sentiment, intents, escalation

    def _sentiment(self, text_score: float, rating: int | None) -> Sentiment:
        rules = self.rules.sentiment
        total = text_score + (rules.rating_scores.get(rating, 0.0) if rating is not None else 0.0)
        if total <= rules.negative_at:
            return "negative"
        if total >= rules.positive_at:
            return "positive"
        return "neutral"

    def _intent(self, scores: dict[str, float], sentiment: Sentiment) -> Intent:
        adjust = self._adjust.get(sentiment)
        if adjust is not None:
            scores = dict(scores)
            for intent, factor in adjust[0]:
                scores[intent] = scores.get(intent, 0.0) * factor
            for intent, extra in adjust[1]:
                scores[intent] = scores.get(intent, 0.0) + extra
        best: tuple[float, int, Intent] | None = None
        for name, score in scores.items():
            intent, rank, minimum = self._intent_info[name]
            if score >= minimum and (best is None or (score, rank) > best[:2]):
                best = (score, rank, intent)
        return best[2] if best is not None else Intent.OTHER

    def _priority(
        self, intent: Intent, sentiment: Sentiment, furious: bool,
        escalation: float, rating: int | None, kind: str, age_minutes: float,
    ) -> Priority:
        rules = self.rules.priority
        if intent is Intent.SPAM:
            return Priority.LOW
        level = rules.base.get(intent, Priority.NORMAL).rank
        if furious:
            level += rules.furious_bump
        if rating is not None:
            level += rules.rating_bump.get(rating, 0)
        level += int(escalation)
        level += rules.kind_bump.get(kind, 0)
        if intent in rules.age_applies_to:
            level += max((bump for after, bump in rules.age_bumps.items() if age_minutes >= after), default=0)
        negative = sentiment == "negative" or (rating is not None and rating <= rules.floor_rating)
        if negative:
            level = max(level, Priority.NORMAL.rank)
        return _PRIORITY_ORDER[max(0, min(level, Priority.URGENT.rank))]

    def classify(
        self, text: str, *, rating: int | None = None, kind: str = "mention", age_minutes: float = 0.0
    ) -> TriageResult:
        """Language, sentiment, intent and priority of one message."""
        prepared = self._prepare(text)
        language = self._language(prepared)
        text_score, intent_scores, escalation = self._score(prepared, language)
        sentiment = self._sentiment(text_score, rating)
        intent = self._intent(intent_scores, sentiment)
        furious = sentiment == "negative" and (prepared.shouting or text_score <= self.rules.priority.furious_score)
        priority = self._priority(intent, sentiment, furious, escalation, rating, kind, age_minutes)
        return TriageResult(language=language, sentiment=sentiment, intent=intent, priority=priority)
