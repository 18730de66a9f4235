"""Triage rules: their schema, the shipped files, and an admin's file merged over them.

Shipped files
    ``inbox.config/triage.toml`` holds what is not per language: detection, sentiment,
    intent and priority settings and ``[lexicon.common]`` (emoji, spam patterns). Each
    language's keyword lists are a file of their own, ``inbox.config/triage/lexicons/<code>.toml``
    holding that language's ``[lexicon.<code>...]`` tables (the file name is the ISO 639-1
    code). Every shipped lexicon file is read, in the order of ``languages`` and then by
    name, and merged into the rules file; together they are the defaults.

Rules files and the merge rule
    ``load_rules()`` returns the shipped defaults. ``load_rules(path)`` reads an admin's
    file (the ``[triage] rules`` key of the config) and deep-merges it INTO the defaults:
    tables merge key by key (recursively), any other value (number, string, array) replaces
    the default. So an admin adds or re-weights single terms
    (``[lexicon.fr.intents.delivery] "point relais" = 2``), removes a shipped term by giving
    it weight 0, adds a whole language with a new ``[lexicon.xx]`` table, and replaces
    arrays (``languages``, ``stopwords``, ``negations``, ``intents.precedence``) wholesale.
    A bad file raises ``RulesError`` listing every problem by key path.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any

from lingua import IsoCode639_1, Language
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inbox.triage.labels import Intent, Priority
from inbox.triage.text import words_of

__all__ = [
    "Adjustment",
    "DetectionRules",
    "IntentRules",
    "Lexicon",
    "PriorityRules",
    "RulesError",
    "SentimentRules",
    "TriageRules",
    "iso_language",
    "load_rules",
    "shipped_config",
    "shipped_rules",
    "validate_rules",
]


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
    short_text_chars: int = Field(0, ge=0)
    low_accuracy_min_confidence: float = Field(0.0, ge=0.0, le=1.0)
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
        Intent.SPAM,
        Intent.BILLING,
        Intent.DELIVERY,
        Intent.COMPLAINT,
        Intent.QUESTION,
        Intent.PRAISE,
        Intent.OTHER,
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
    """Everything the shipped rules and lexicon files hold, validated."""

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
    """The shipped ``inbox.config`` data folder (triage rules and lexicons, reply templates)."""
    return files("inbox.config")


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


def _shipped_data(config: Traversable) -> dict[str, Any]:
    """The rules file of a config folder with every lexicon file merged in, as parsed TOML."""
    data = _parse_toml(config.joinpath(_DEFAULTS_NAME).read_text(encoding="utf-8"), f"inbox.config/{_DEFAULTS_NAME}")
    languages = data.get("languages")
    order = {code: i for i, code in enumerate(languages)} if isinstance(languages, list) else {}
    lexicons = sorted(
        (entry.name.removesuffix(".toml"), entry)
        for entry in config.joinpath("triage").joinpath("lexicons").iterdir()
        if entry.name.endswith(".toml")
    )
    lexicons.sort(key=lambda item: order.get(item[0], len(order)))  # stable: the rest stay by name
    for code, entry in lexicons:
        source = f"inbox.config/triage/lexicons/{entry.name}"
        data = _merge(data, _lexicon_file(code, entry.read_text(encoding="utf-8"), source))
    return data


def _lexicon_file(code: str, text: str, source: str) -> dict[str, Any]:
    """One language's lexicon file: only ``[lexicon.<code>...]`` tables, the file being named after the code."""
    data = _parse_toml(text, source)
    lexicon = data.get("lexicon")
    stray: list[tuple[str, ...]] = [(key,) for key in data if key != "lexicon"]
    stray += [("lexicon", key) for key in lexicon if key != code] if isinstance(lexicon, Mapping) else []
    if stray:
        raise RulesError(
            source, [f"{_key_path(loc)}: a lexicon file holds only [lexicon.{code}] tables" for loc in stray]
        )
    return data


def load_rules(path: Path | None = None) -> TriageRules:
    """Shipped default rules, merged with an admin's file when ``path`` is given."""
    data = _shipped_data(shipped_config())
    source = f"inbox.config/{_DEFAULTS_NAME}"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise RulesError(source, [f"(file): cannot read: {exc}"]) from exc
        data = _merge(data, _parse_toml(text, source))
    return validate_rules(data, source)


@cache
def shipped_rules() -> TriageRules:
    """The shipped rules alone, read once per process (what an admin's file is compared with)."""
    return load_rules()


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


# --------------------------------------------------------------------------- validation

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


def iso_language(code: str) -> Language | None:
    """The lingua language of an ISO 639-1 code, or None when lingua does not know it."""
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
            if isinstance(code, str) and (code != code.lower() or iso_language(code) is None):
                problems.append(f"languages[{i}]: unknown ISO 639-1 language code {code!r}")
    default = data.get("default_language")
    if isinstance(default, str) and isinstance(languages, list) and default not in languages:
        problems.append(f"default_language: {default!r} is not in languages")
    detection = data.get("detection")
    hints = detection.get("hints") if isinstance(detection, Mapping) else None
    if isinstance(hints, Mapping):  # hints of languages left out of `languages` are just unused
        for code in hints:
            if iso_language(code) is None:
                problems.append(f"{_key_path(('detection', 'hints', code))}: unknown ISO 639-1 language code")
    lexicon = data.get("lexicon")
    if isinstance(lexicon, Mapping):
        for code, lex in lexicon.items():
            if code != "common" and (code != code.lower() or iso_language(code) is None):
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
                if isinstance(word, str) and not words_of(word):
                    yield f"{_key_path(('lexicon', code, table))}[{i}]: empty after normalisation"


def _term_problems(loc: tuple[str | int, ...], term: str) -> Iterator[str]:
    body = term[:-1] if term.endswith("*") else term
    words = words_of(body)
    if not words:
        yield f"{_key_path(loc)}: empty term"
    elif "*" in body:
        yield f"{_key_path(loc)}: '*' is only allowed at the end of a term"
    elif term.endswith("*") and len(words) > 1:
        yield f"{_key_path(loc)}: a trailing '*' only works on a single word"
