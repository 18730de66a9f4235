"""Which language a message is in: cheap evidence first, then lingua and the shipped model together.

URLs, @handles and #tags are stripped first (``text.prepare``). Cheap evidence decides when it
is clear: stopwords unique to one configured language, and letters only one of them uses (ă ș ț
are Romanian, ß German, ñ Spanish). Otherwise the configured languages are scored by lingua's
low-accuracy mode (its small models) plus ``MODEL_WEIGHT`` times the log-probabilities of the
language-ID model the project trains and ships (``langid``: customer-style text, Romanian
without diacritics, SMS shorthand), each built lazily once. The shipped model is asked first:
when its lead is more than lingua could ever make up (``_LINGUA_SWING``), lingua is not asked at
all, the answer being the same (most texts; lingua's call was the largest cost of triage). Nothing
detectable (empty, emoji only) gives ``default_language``.

The memory knob: lingua's high-accuracy models take 200 to 300 MB. The shipped rules never load
them; ``[detection] short_text_chars`` and ``low_accuracy_min_confidence`` send texts that short,
or answers that unsure, to them. When a configured language is one the shipped model does not
know (an admin's added language), lingua alone scores.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from lingua import Language, LanguageDetectorBuilder
from lingua import LanguageDetector as Lingua

from inbox.triage.langid import LanguageModel, shipped_model
from inbox.triage.rules import TriageRules, iso_language
from inbox.triage.text import Prepared, both_cases, has_letter, words_of

__all__ = ["MODEL_WEIGHT", "Detector"]

# How much the shipped model's log-probabilities count beside lingua's: chosen by 5-fold
# cross-validation on the corpus's training split (0.25 to 0.5 were best, either alone was worse).
MODEL_WEIGHT = 0.5
_FLOOR = 1e-4  # lingua says 0 for a language it rules out; the model may still outvote it
# The most lingua can move one language against another: log(1 + _FLOOR) - log(_FLOOR), about 9.21.
# When the shipped model alone leads by more, lingua cannot change the answer and is not asked
# (with no confidence threshold configured); a small margin covers rounding.
_LINGUA_SWING = math.log(1 + _FLOOR) - math.log(_FLOOR) + 1e-6


def _confidence(scores: dict[str, float], best: str) -> float:
    """Share of the best language in the softmax of the combined scores."""
    top = scores[best]
    return 1.0 / sum(math.exp(score - top) for score in scores.values())


class Detector:
    """Names the language of prepared texts with one set of rules; loads the models on first need."""

    def __init__(self, rules: TriageRules) -> None:
        self.rules = rules
        self._languages = tuple(rules.languages)
        self._low: Lingua | None = None
        self._high: Lingua | None = None
        self._use_model: bool | None = None
        self._stopwords = self._stopword_languages()
        self._hints = {
            lang: both_cases(chars)
            for lang, chars in rules.detection.hints.items()
            if chars and lang in self._languages
        }
        self._any_hint = frozenset().union(*self._hints.values())

    def _stopword_languages(self) -> dict[str, str]:
        """Normalised stopword -> language, keeping only words unique to one detectable language."""
        owners: dict[str, set[str]] = {}
        for lang, lex in self.rules.lexicon.items():
            if lang in self._languages:
                for word in lex.stopwords:
                    for token in words_of(word):
                        owners.setdefault(token, set()).add(lang)
        return {word: langs.pop() for word, langs in owners.items() if len(langs) == 1}

    def detect(self, prepared: Prepared) -> str:
        """ISO 639-1 code (lowercase) of the text's language, or the configured default."""
        if len(self._languages) == 1 or not has_letter(prepared.detect):
            return self.rules.default_language  # (with one language, it is the default one)
        cheap = self._cheap_language(prepared)
        return cheap if cheap is not None else self._scored_language(prepared.detect)

    def _cheap_language(self, prepared: Prepared) -> str | None:
        """Stopwords and language-specific letters; decides only when the evidence is clear."""
        rules = self.rules.detection
        evidence: dict[str, float] = {}
        for lang in map(self._stopwords.get, prepared.tokens):
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

    def _scored_language(self, text: str) -> str:
        """Lingua's low-accuracy mode and the shipped model together; lingua's high accuracy if configured so."""
        rules = self.rules.detection
        sample = " ".join(text.split())[: rules.max_chars]
        model = self._model()
        log_probs = model.log_probabilities(sample) if model is not None else {}
        confident = len(sample) > rules.short_text_chars and rules.low_accuracy_min_confidence <= 0
        if confident and len(log_probs) >= len(self._languages):
            ranked = sorted((MODEL_WEIGHT * log_probs[code] for code in self._languages), reverse=True)
            if ranked[0] - ranked[1] > _LINGUA_SWING:  # lingua cannot overturn it (its cost saved)
                return max(self._languages, key=log_probs.__getitem__)
        scores = dict.fromkeys(self._languages, 0.0)
        known = False  # lingua gives every language 0 for a script none of them uses
        for value in self._detector(high=False).compute_language_confidence_values(sample):
            known = known or value.value > 0
            code = value.language.iso_code_639_1.name.lower()
            if code in scores:
                scores[code] += math.log(value.value + _FLOOR)
        for code, log_prob in log_probs.items():
            if code in scores:
                scores[code] += MODEL_WEIGHT * log_prob
        best = max(scores, key=scores.__getitem__)
        if len(sample) > rules.short_text_chars and _confidence(scores, best) >= rules.low_accuracy_min_confidence:
            return best if known or log_probs else self.rules.default_language
        found = self._detector(high=True).detect_language_of(sample)
        return found.iso_code_639_1.name.lower() if found is not None else self.rules.default_language

    def _model(self) -> LanguageModel | None:
        """The shipped model when it knows every configured language (otherwise lingua alone decides)."""
        if self._use_model is None:
            self._use_model = set(self._languages) <= set(shipped_model().languages)
        return shipped_model() if self._use_model else None

    def warm_up(self) -> None:
        """Load the language models now (about a second of CPU) rather than in the middle of the first poll."""
        self._detector(high=False)
        self._model()
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

        return [*(load(language) for language in self._lingua_languages()), self.warm_up]

    def _needs_high_accuracy(self) -> bool:
        return self.rules.detection.short_text_chars > 0 or self.rules.detection.low_accuracy_min_confidence > 0

    def _lingua_languages(self) -> list[Language]:
        return [lang for code in self._languages if (lang := iso_language(code)) is not None]

    def _detector(self, *, high: bool) -> Lingua:
        """Built once per Detector, on first need (loading models takes about a second)."""
        current = self._high if high else self._low
        if current is None:
            builder = LanguageDetectorBuilder.from_languages(*self._lingua_languages())
            if not high:
                builder = builder.with_low_accuracy_mode()
            current = builder.with_preloaded_language_models().build()
            if high:
                self._high = current
            else:
                self._low = current
        return current
