"""Scoring one message: sentiment, intent and priority; the `Triager`.

The learned model (``model``) reads the message and gives each intent and sentiment a
log-probability; the rules then add their evidence in the same units (log-odds), so a rule of
weight 2 multiplies the odds by e² ≈ 7.4:

- every term an admin's rules file adds or re-weights (compared with the shipped rules) adds its
  weight change to its intent, or to the sentiment (a negation before it flips it); a shipped
  term set to 0 subtracts its weight. Shipped terms otherwise leave intent and sentiment to the
  model; they still give escalation, furiousness and ``--explain``'s list of what fired;
- ``patterns`` (spam links, shorteners, phishing domains...) add their summed weight to their
  intent when it reaches the intent's ``min_score``;
- the star rating, given or written in the text ("★★☆☆☆", "3/5"), pulls towards its sentiment
  by ``sentiment.rating_scores`` (a 3-star rating, scoring 0, pulls towards neutral by
  ``_NEUTRAL_RATING_PULL``): the text wins only when it clearly says otherwise;
- shouting multiplies the sentiment's distance from neutral by ``sentiment.shout_factor``.
Ties go to the earlier intent in ``intents.precedence``. ``Triager(rules, rules_only=True)``
scores with the keyword rules alone, as below (the method before the model).

Keyword rules alone

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

"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache

from inbox.triage.features import describe, inline_rating
from inbox.triage.labels import PRIORITY_ORDER, Intent, Priority, Sentiment, TriageResult
from inbox.triage.language import Detector
from inbox.triage.matcher import CACHE_LIMIT, ESCALATION, NEGATIVE, NEUTRAL, POSITIVE, Entry, Matcher
from inbox.triage.model import Model, Scored, load_model
from inbox.triage.rules import Lexicon, TriageRules, shipped_rules
from inbox.triage.text import CLAUSE_PUNCT, Prepared, prepare, shouting, words_of

__all__ = ["Explanation", "Triager", "explanation_json"]

_ANY = "\0any"  # key for word sets of languages that have no lexicon
_NEUTRAL_RATING_PULL = 2.5  # how far a rating scoring 0 (3 stars: a mixed review) pulls towards neutral
_SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")
_KEYWORD_CAP = 4.0  # keyword scores above this say nothing more to the model
_NORMAL_RANK, _URGENT_RANK = Priority.NORMAL.rank, Priority.URGENT.rank
# Which sentiments go with which intent, by the labelling rules (CONTRACT.md): thanks are positive,
# a question is a neutral request, a problem is never positive ("thanks for nothing" is negative,
# a mixed review neutral), chit-chat, jokes and pitches are never negative; spam has its own tone.
# Intent and sentiment are chosen together among these pairs, so neither head's slip decides alone.
_SENTIMENTS_OF: dict[str, tuple[Sentiment, ...]] = {
    "delivery": ("negative", "neutral"),
    "billing": ("negative", "neutral"),
    "question": ("neutral",),
    "complaint": ("negative", "neutral"),
    "praise": ("positive",),
    "other": ("neutral", "positive"),
}

Hit = tuple[int, str, tuple[Entry, ...]]  # a listed term found: (token index, matched key, entries)
Pattern = tuple[re.Pattern[str], str, str, float]  # (pattern, intent, language, weight)


@cache
def keyword_scorer() -> Triager:
    """The shipped keyword rules, scoring the model's dense features whatever an admin's file says."""
    return Triager(shipped_rules(), rules_only=True)


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why triage chose what it did (``inbox triage --explain``)."""

    result: TriageResult
    intent_scores: dict[str, float]  # the model's log-probability plus the rules' evidence, per intent
    sentiment_scores: dict[str, float]
    intent_probabilities: dict[str, float]  # the model's alone
    sentiment_probabilities: dict[str, float]
    intent_features: list[tuple[str, float]]  # the features that pushed the chosen intent most
    sentiment_features: list[tuple[str, float]]
    rule_intents: dict[str, float]  # the rules' evidence per intent (overrides, patterns)
    rule_sentiment: float
    rating: int | None  # given, or read from the text
    shouted: bool
    terms: list[tuple[str, str]]  # (term, what it says) of every listed term found, for the record


@dataclass(frozen=True, slots=True)
class _Resolved:
    """A matched term's meaning in one language."""

    polarity: float
    negatable: bool
    escalation: float
    intents: tuple[tuple[str, float], ...]


class Triager:
    """Classifies messages with one set of rules; build once and reuse (it caches)."""

    def __init__(self, rules: TriageRules, *, rules_only: bool = False, model: Model | None = None) -> None:
        self.rules = rules
        self.detector = Detector(rules)
        self.model = None if rules_only else (model or load_model())
        self._matcher = Matcher(self._terms())
        self._overrides = Matcher(_changed_terms(rules.lexicon, shipped_rules().lexicon))
        self._resolved: dict[tuple[str, str], _Resolved] = {}
        self._patterns = self._compile_patterns()
        self._searches = [(found, found[0].search) for found in self._patterns]
        # With the shipped rules, this triager's own matches give the model's keyword features:
        # one pass over the message instead of a second one by `keyword_scorer`.
        self._own_keywords = rules == shipped_rules()
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
        self._base_rank = {intent: rules.priority.base.get(intent, Priority.NORMAL).rank for intent in Intent}
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

    def _compile_patterns(self) -> list[Pattern]:
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

    def _found_patterns(self, prepared: Prepared) -> list[Pattern]:
        """The patterns found in the whole normalised text (searched once per message)."""
        full = prepared.full
        return [found for found, search in self._searches if search(full)]

    def _score(
        self, prepared: Prepared, language: str, hits: list[Hit], patterns: list[Pattern]
    ) -> tuple[float, dict[str, float], float]:
        """(text sentiment score before shouting, intent scores, escalation levels) of the matches."""
        sentiment = 0.0
        escalation = 0.0
        intents: dict[str, float] = {}
        seen: set[str] = set()
        for index, key, entries in hits:
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
        for _pattern, intent, lang, weight in patterns:
            if lang != language and lang != "common":
                weight *= foreign
            intents[intent] = intents.get(intent, 0.0) + weight
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
        level = self._base_rank[intent]
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
            level = max(level, _NORMAL_RANK)
        return PRIORITY_ORDER[max(0, min(level, _URGENT_RANK))]

    def _rule_evidence(
        self, prepared: Prepared, language: str, patterns: list[Pattern]
    ) -> tuple[dict[str, float], float]:
        """The rules' evidence beside the model: (per intent, sentiment polarity), in log-odds."""
        foreign = self.rules.intents.foreign_weight
        intents: dict[str, float] = {}
        polarity = 0.0
        seen: set[tuple[str, str]] = set()
        negations = self._negations.get(language) or self._negations[_ANY]
        for index, key, entries in self._overrides.find(prepared.tokens):
            strongest: dict[str, float] = {}
            for category, lang, change in entries:
                weight = change if lang in (language, "common") else change * foreign
                if abs(weight) > abs(strongest.get(category, 0.0)):
                    strongest[category] = weight
            for category, weight in strongest.items():
                if category in (POSITIVE, NEGATIVE):
                    value = weight if category == POSITIVE else -weight
                    negatable = key[0].isalnum() and not any(w in negations for w in key.split(" "))
                    polarity += -value if negatable and self._negated(prepared.tokens, index, language) else value
                elif category not in (NEUTRAL, ESCALATION) and (key, category) not in seen:
                    seen.add((key, category))
                    intents[category] = intents.get(category, 0.0) + weight
        matched: dict[str, float] = {}
        for _pattern, intent, lang, weight in patterns:
            matched[intent] = matched.get(intent, 0.0) + (weight if lang in (language, "common") else weight * foreign)
        for intent, total in matched.items():
            if total >= self._intent_info[intent][2]:
                intents[intent] = intents.get(intent, 0.0) + total
        return intents, polarity

    def _combine(
        self, scored: Scored, rule_intents: dict[str, float], polarity: float, stars: int | None, shouted: bool
    ) -> tuple[dict[str, float], dict[str, float]]:
        """(intent scores, sentiment scores): the model's log-probabilities plus the rules' evidence."""
        intents = {name: logp + rule_intents.get(name, 0.0) for name, logp in scored.log_proba["intent"].items()}
        for name, extra in rule_intents.items():
            intents.setdefault(name, extra)
        sentiment = dict(scored.log_proba["sentiment"])
        pull = polarity
        if stars is not None:
            rating_score = self.rules.sentiment.rating_scores.get(stars, 0.0)
            if rating_score:
                pull += rating_score
            else:
                sentiment["neutral"] += _NEUTRAL_RATING_PULL
        if pull > 0:
            sentiment["positive"] += pull
        elif pull < 0:
            sentiment["negative"] -= pull
        if shouted:
            factor = self.rules.sentiment.shout_factor
            for label in ("negative", "positive"):
                sentiment[label] = sentiment["neutral"] + (sentiment[label] - sentiment["neutral"]) * factor
        return intents, sentiment

    def keyword_features(self, text: str, language: str) -> dict[str, float]:
        """The keyword rules' scores of a text as the model's dense features (``#kw:<intent>``, ``#kw:+``, ``#kw:-``)."""
        prepared = prepare(text, self.rules.max_text_chars)
        hits = self._matcher.find(prepared.tokens)
        sentiment, intents, _escalation = self._score(prepared, language, hits, self._found_patterns(prepared))
        return _keyword_dense(sentiment, intents)

    def _best_pair(self, intents: dict[str, float], sentiments: dict[str, float]) -> tuple[Intent, Sentiment]:
        """The likeliest (intent, sentiment) pair that the labelling rules allow together."""
        best: tuple[float, int] | None = None
        chosen: tuple[str, Sentiment] = ("", "neutral")
        for name, score in intents.items():  # the first of equal pairs wins, as max() over the pairs in order
            rank = self._intent_info[name][1]
            for sentiment in _SENTIMENTS_OF.get(name, _SENTIMENTS):
                key = (score + sentiments[sentiment], rank)
                if best is None or key > best:
                    best, chosen = key, (name, sentiment)
        return self._intent_info[chosen[0]][0], chosen[1]

    def _best_intent(self, scores: dict[str, float]) -> Intent:
        best = max(scores, key=lambda name: (scores[name], self._intent_info[name][1]))
        return self._intent_info[best][0]

    def _explained(
        self, text: str, rating: int | None, kind: str, age_minutes: float, explain: bool
    ) -> tuple[TriageResult, Explanation | None]:
        prepared = prepare(text, self.rules.max_text_chars)
        shouted = self._shouting(prepared)
        language = self.detector.detect(prepared)
        hits = self._matcher.find(prepared.tokens)  # each step below reads these matches: one pass
        patterns = self._found_patterns(prepared)
        unshouted, keyword_intents, escalation = self._score(prepared, language, hits, patterns)
        text_score = unshouted * self.rules.sentiment.shout_factor if shouted else unshouted
        if self.model is None:
            sentiment = self._sentiment(text_score, rating)
            intent = self._intent(keyword_intents, sentiment)
        else:
            if self._own_keywords:
                dense = _keyword_dense(unshouted, keyword_intents)
            else:
                dense = keyword_scorer().keyword_features(text, language)
            head = text[: self.rules.max_text_chars]  # `prepared.full` is its normalised form
            stars = rating if rating is not None else inline_rating(head, prepared.full)
            # the features would read the same rating from the text: give them the one just read
            scored = self.model.score(
                head, stars, dense, normalized=prepared.full, read_rating=False, tokens=prepared.tokens
            )
            rule_intents, polarity = self._rule_evidence(prepared, language, patterns)
            intent_scores, sentiment_scores = self._combine(scored, rule_intents, polarity, stars, shouted)
            intent, sentiment = self._best_pair(intent_scores, sentiment_scores)
        furious = sentiment == "negative" and (shouted or text_score <= self.rules.priority.furious_score)
        priority = self._priority(intent, sentiment, furious, escalation, rating, kind, age_minutes)
        result = TriageResult(language=language, sentiment=sentiment, intent=intent, priority=priority)
        explanation = None
        if explain and self.model is not None:
            explanation = Explanation(
                result=result,
                intent_scores=intent_scores,
                sentiment_scores=sentiment_scores,
                intent_probabilities={k: math.exp(v) for k, v in scored.log_proba["intent"].items()},
                sentiment_probabilities={k: math.exp(v) for k, v in scored.log_proba["sentiment"].items()},
                intent_features=self.model.contributions(scored, "intent", intent.value),
                sentiment_features=self.model.contributions(scored, "sentiment", sentiment),
                rule_intents=rule_intents,
                rule_sentiment=polarity,
                rating=stars,
                shouted=shouted,
                terms=self._fired(hits, patterns, language),
            )
        return result, explanation

    def _fired(self, hits: list[Hit], patterns: list[Pattern], language: str) -> list[tuple[str, str]]:
        """Every listed term found, with what it says in the detected language."""
        fired: list[tuple[str, str]] = []
        for _index, key, entries in hits:
            meaning = self._resolve(key, entries, language)
            says = [f"{'+' if meaning.polarity > 0 else ''}{meaning.polarity:g} sentiment"] if meaning.polarity else []
            says += [f"escalation {meaning.escalation:g}"] if meaning.escalation else []
            says += [f"{intent} {weight:g}" for intent, weight in meaning.intents]
            if says:
                fired.append((key, ", ".join(says)))
        fired += [(p.pattern, f"{intent} {w:g}") for p, intent, _lang, w in patterns]
        return fired

    def classify(
        self, text: str, *, rating: int | None = None, kind: str = "mention", age_minutes: float = 0.0
    ) -> TriageResult:
        """Language, sentiment, intent and priority of one message."""
        return self._explained(text, rating, kind, age_minutes, explain=False)[0]

    def explain(
        self, text: str, *, rating: int | None = None, kind: str = "mention", age_minutes: float = 0.0
    ) -> Explanation | None:
        """``classify`` with the reasons (None when scoring with the keyword rules alone)."""
        return self._explained(text, rating, kind, age_minutes, explain=True)[1]


def _keyword_dense(sentiment: float, intents: dict[str, float]) -> dict[str, float]:
    """Keyword scores (sentiment before shouting) as the model's dense features, capped and scaled to 0..1."""
    out = {f"#kw:{name}": min(score, _KEYWORD_CAP) / _KEYWORD_CAP for name, score in intents.items()}
    out["#kw:+"] = min(max(sentiment, 0.0), _KEYWORD_CAP) / _KEYWORD_CAP
    out["#kw:-"] = min(max(-sentiment, 0.0), _KEYWORD_CAP) / _KEYWORD_CAP
    return out


def _changed_terms(lexicon: dict[str, Lexicon], shipped: dict[str, Lexicon]) -> Iterator[tuple[str, Entry]]:
    """What an admin's rules changed in the shipped lexicons: (term, (category, language, weight change))."""
    for lang, lex in lexicon.items():
        base = shipped.get(lang, Lexicon())
        tables = [(POSITIVE, lex.positive, base.positive), (NEGATIVE, lex.negative, base.negative)]
        tables += [(i.value, table, base.intents.get(i, {})) for i, table in lex.intents.items()]
        for category, table, before in tables:
            for term, weight in table.items():
                change = weight - before.get(term, 0.0)
                if change:
                    yield term, (category, lang, change)


def _rounded(scores: dict[str, float]) -> dict[str, float]:
    return {name: round(value, 3) for name, value in sorted(scores.items(), key=lambda item: -item[1])}


def explanation_json(why: Explanation) -> dict[str, object]:
    """An explanation as plain JSON-able data, best first (what ``inbox triage --explain`` prints)."""
    return {
        "intent": {
            "scores": _rounded({k: v for k, v in why.intent_scores.items() if math.isfinite(v)}),
            "model_probabilities": _rounded(why.intent_probabilities),
            "top_features": [[describe(f), round(v, 3)] for f, v in why.intent_features],
            "rules": _rounded(why.rule_intents),
        },
        "sentiment": {
            "scores": _rounded(why.sentiment_scores),
            "model_probabilities": _rounded(why.sentiment_probabilities),
            "top_features": [[describe(f), round(v, 3)] for f, v in why.sentiment_features],
            "rules": round(why.rule_sentiment, 3),
            "rating": why.rating,
            "shouted": why.shouted,
        },
        "terms": [[term, says] for term, says in why.terms],
    }
