"""Scoring one message with the keyword rules: sentiment, intent and priority; the `Triager`.

Matches come from ``matcher``: terms of the detected language count fully, ``[lexicon.common]``
counts for every language, and terms of the other languages count with
``intents.foreign_weight`` (customers mix languages and short texts get misdetected).
``patterns`` are regular expressions searched in the whole normalised text (URLs included), for
spam links and the like.

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

A different method (a learned model) replaces this module; rules, text and language stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from inbox.triage.labels import PRIORITY_ORDER, Intent, Priority, Sentiment, TriageResult
from inbox.triage.language import Detector
from inbox.triage.matcher import CACHE_LIMIT, ESCALATION, NEGATIVE, NEUTRAL, POSITIVE, Entry, Matcher
from inbox.triage.rules import TriageRules
from inbox.triage.text import CLAUSE_PUNCT, Prepared, prepare, shouting, words_of

__all__ = ["Triager"]

_ANY = "\0any"  # key for word sets of languages that have no lexicon


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A matched term's meaning in one language."""

    polarity: float
    negatable: bool
    escalation: float
    intents: tuple[tuple[str, float], ...]


class Triager:
    """Classifies messages with one set of rules; build once and reuse (it caches)."""

    def __init__(self, rules: TriageRules) -> None:
        self.rules = rules
        self.detector = Detector(rules)
        self._matcher = Matcher(self._terms())
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._patterns = self._compile_patterns()
        self._negations = self._word_sets("negations")
        self._breaks = {lang: words | CLAUSE_PUNCT for lang, words in self._word_sets("clause_breaks").items()}
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
            tables = ((POSITIVE, lex.positive), (NEGATIVE, lex.negative), (ESCALATION, lex.escalation))
            for category, table in tables:
                for term, weight in table.items():
                    if weight:  # weight 0 is how an admin removes a shipped term
                        yield term, (category, lang, weight)
            for intent, table in lex.intents.items():
                for term, weight in table.items():
                    if weight:
                        yield term, (intent.value, lang, weight)
            for term in lex.neutral:
                yield term, (NEUTRAL, lang, 1.0)

    def _compile_patterns(self) -> list[tuple[re.Pattern[str], str, str, float]]:
        return [
            (re.compile(pattern), intent.value, lang, weight)
            for lang, lex in self.rules.lexicon.items()
            for intent, table in lex.patterns.items()
            for pattern, weight in table.items()
            if weight
        ]

    def _word_sets(self, field: str) -> dict[str, frozenset[str]]:
        common = self.rules.lexicon.get("common")
        shared = {t for w in getattr(common, field, []) for t in words_of(w)} if common else set()
        sets = {
            lang: frozenset(shared | {t for w in getattr(lex, field) for t in words_of(w)})
            for lang, lex in self.rules.lexicon.items()
        }
        sets[_ANY] = frozenset(shared)  # languages without a lexicon of their own
        return sets

    # ---- language

    def detect_language(self, text: str) -> str:
        """ISO 639-1 code (lowercase) of the text's language, or the configured default."""
        return self.detector.detect(prepare(text, self.rules.max_text_chars))

    def warm_up(self) -> None:
        """Load the language models now rather than in the middle of the first poll (see `Detector.warm_up`)."""
        self.detector.warm_up()

    def warm_up_steps(self) -> list[Callable[[], None]]:
        """`warm_up` in pieces of one language's models each (see `Detector.warm_up_steps`)."""
        return self.detector.warm_up_steps()

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
        best.pop(NEUTRAL, None)
        polarity = best.pop(POSITIVE, 0.0) - best.pop(NEGATIVE, 0.0)
        escalation = best.pop(ESCALATION, 0.0)
        negatable = key[0].isalnum() and not any(
            word in (self._negations.get(language) or self._negations[_ANY]) for word in key.split(" ")
        )  # emoji say what they say; a phrase with its own negation ("not bad") is already negated
        found = _Resolved(polarity, negatable, escalation, tuple(best.items()))
        if len(self._resolved) >= CACHE_LIMIT:
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

    def _shouting(self, prepared: Prepared) -> bool:
        """A shouted text (a run of "!" or ALL-CAPS words) weighs more, and makes a negative one furious."""
        rules = self.rules.sentiment
        return shouting(
            prepared.detect,
            exclamation_run=rules.exclamation_run,
            min_caps_words=rules.shout_min_caps_words,
            min_word_length=rules.shout_min_word_length,
        )

    def _score(self, prepared: Prepared, language: str, shouted: bool) -> tuple[float, dict[str, float], float]:
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
        if shouted:
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
        self,
        intent: Intent,
        sentiment: Sentiment,
        furious: bool,
        escalation: float,
        rating: int | None,
        kind: str,
        age_minutes: float,
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
        return PRIORITY_ORDER[max(0, min(level, Priority.URGENT.rank))]

    def classify(
        self, text: str, *, rating: int | None = None, kind: str = "mention", age_minutes: float = 0.0
    ) -> TriageResult:
        """Language, sentiment, intent and priority of one message."""
        prepared = prepare(text, self.rules.max_text_chars)
        shouted = self._shouting(prepared)
        language = self.detector.detect(prepared)
        text_score, intent_scores, escalation = self._score(prepared, language, shouted)
        sentiment = self._sentiment(text_score, rating)
        intent = self._intent(intent_scores, sentiment)
        furious = sentiment == "negative" and (shouted or text_score <= self.rules.priority.furious_score)
        priority = self._priority(intent, sentiment, furious, escalation, rating, kind, age_minutes)
        return TriageResult(language=language, sentiment=sentiment, intent=intent, priority=priority)
