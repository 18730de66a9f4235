"""A small language-ID model the project trains and ships: naive Bayes over character n-grams.

Trained on the triage corpus's training split and the shipped lexicons (customer text as it is
written: Romanian without diacritics, SMS shorthand, English mixed in), it knows the eight
shipped languages in well under 1 MB (``langid.npz``, 28k features) where lingua's high-accuracy
models take hundreds of MB. Numpy only at run time; ``python -m inbox.triage.langid_train`` rebuilds
the artifact from the corpus (deterministic, the held-out split never read).

Features: every word (letters only, lowercased, accents kept) padded with a space on each side
gives its character 1- to 4-grams and the word itself. A text's score for a language is the sum
of its features' log-probabilities (unknown features add nothing).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["LanguageModel", "features", "model_path", "shipped_model"]

MAX_N = 4
_WORD_RE = re.compile(r"[^\W\d_]+")
_LONG_WORD = 64  # padded words longer than this get their n-grams without remembered slices
_CACHE_WORDS = 20_000  # words whose scores are remembered (most traffic repeats a few thousand words)


def model_path() -> Path:
    """Where the shipped artifact lives (beside this module)."""
    return Path(__file__).with_name("langid.npz")


@cache
def _gram_slices(size: int) -> tuple[slice, ...]:
    """The slices of a padded word of ``size`` characters giving its 1- to 4-grams, in ``_grams``' order."""
    return tuple(slice(i, i + n) for n in range(1, MAX_N + 1) for i in range(size - n + 1))


def _grams(word: str) -> list[str]:
    """The padded word's 1- to 4-grams (the lone spaces included), then the word itself."""
    padded = f" {word} "
    if len(padded) > _LONG_WORD:  # no slices remembered for an odd length
        grams = [padded[i : i + n] for n in range(1, MAX_N + 1) for i in range(len(padded) - n + 1)]
    else:
        grams = list(map(padded.__getitem__, _gram_slices(len(padded))))
    grams.append(f"w:{word}")
    return grams


def _word_features(word: str) -> list[str]:
    return [g for g in _grams(word) if g != " "]


def features(text: str) -> list[str]:
    """The model's features of a text: each word's character n-grams and the word."""
    return [f for word in _WORD_RE.findall(text.lower()) for f in _word_features(word)]


class LanguageModel:
    """Log-probabilities of features per language; scores texts for a subset of its languages."""

    def __init__(self, languages: Sequence[str], vocabulary: Sequence[str], log_probs: npt.NDArray[np.float32]) -> None:
        self.languages = tuple(languages)
        self._index = {feature: row for row, feature in enumerate(vocabulary)}
        self._index.pop(" ", None)  # never a feature: lets `_word_score` look every n-gram up unfiltered
        self._log_probs = log_probs
        self.vocabulary = tuple(vocabulary)
        self._zero = np.zeros(len(self.languages), dtype=np.float64)
        self._word_cache: dict[str, npt.NDArray[np.float64]] = {}

    @classmethod
    def load(cls, path: Path | None = None) -> LanguageModel:
        """The artifact at `path` (default: the shipped one)."""
        with np.load(path or model_path(), allow_pickle=False) as data:
            return cls([str(x) for x in data["languages"]], [str(x) for x in data["vocabulary"]], data["log_probs"])

    def save(self, path: Path) -> None:
        """Write the artifact (compressed, no pickles)."""
        with path.open("wb") as out:
            np.savez_compressed(
                out,
                languages=np.array(self.languages),
                vocabulary=np.array(self.vocabulary),
                log_probs=self._log_probs,
            )

    def same_as(self, other: LanguageModel) -> bool:
        """Whether two models hold the same languages, features and numbers."""
        return (
            self.languages == other.languages
            and self.vocabulary == other.vocabulary
            and np.array_equal(self._log_probs, other._log_probs)
        )

    def _word_scores(self, words: list[str]) -> list[npt.NDArray[np.float64]]:
        """The known words' summed log-probabilities, in order; the unseen words are scored together."""
        cache = self._word_cache
        fresh: dict[str, npt.NDArray[np.float64]] = {}
        rows: list[int] = []
        starts: list[int] = []
        counted: list[str] = []
        get = self._index.get
        for word in words:
            if word not in cache and word not in fresh:
                # `_word_features` in the same order (each sum adds alike); " " is no key of the index
                found = [row for row in map(get, _grams(word)) if row is not None]
                fresh[word] = self._zero
                if found:
                    starts.append(len(rows))
                    rows.extend(found)
                    counted.append(word)
        if counted:  # one gather and one sum per word segment for all of them, not two array calls per word
            sums = np.add.reduceat(self._log_probs.take(rows, axis=0), starts, axis=0, dtype=np.float64)
            fresh.update(zip(counted, sums, strict=True))
        for word, score in fresh.items():
            if len(cache) < _CACHE_WORDS:
                cache[word] = score
        zero = self._zero  # (a full cache keeps no more words: the fresh ones are read from `fresh`)
        return [score for word in words if (score := fresh[word] if word in fresh else cache[word]) is not zero]

    def log_probabilities(self, text: str) -> dict[str, float]:
        """Language -> log of its posterior probability (uniform prior); empty when no word is known."""
        found = self._word_scores(_WORD_RE.findall(text.lower()))
        if not found:
            return {}
        # one reduction over the words' rows, in word order: the same additions as a running sum, one call
        scores = np.add.reduce(np.array(found), axis=0) if len(found) > 1 else found[0]
        shifted = scores - np.maximum.reduce(scores)  # (what .max() and .sum() call, without their Python layer)
        shifted -= np.log(np.add.reduce(np.exp(shifted)))
        return dict(zip(self.languages, shifted.tolist(), strict=True))


@cache
def shipped_model() -> LanguageModel:
    """The shipped artifact, loaded once per process (about 5 MB in memory)."""
    return LanguageModel.load()
