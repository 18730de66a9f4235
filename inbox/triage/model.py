"""The learned part of triage: a linear model over the message's features, shipped with the package.

``model.npz`` (beside this module) holds the feature vocabulary, the features' idf weights and,
per head (``intent``, ``sentiment``), the class names, the coefficients and the intercepts of a
multinomial logistic regression trained by ``python -m inbox.triage.train`` from the corpus. It is
plain arrays loaded with ``allow_pickle=False``: nothing in it runs. Scoring is a few dictionary
lookups and a sum over the present features' coefficients (tf-idf, binary, L2-normalised), plus
dense features given by the caller (the shipped keyword rules' scores, see ``classify``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inbox.triage.features import CONTRASTS, NEGATION_WINDOW, NEGATIONS, char_grams, cues_and_tokens

__all__ = ["HEADS", "Head", "Model", "Scored", "load_model", "model_path"]

HEADS = ("intent", "sentiment")
_CACHE_LIMIT = 50_000  # tokens in the per-token feature cache before it is emptied
# What a token always gives (its word and, for a word, its character n-grams, as vocabulary indices: an array,
# or the one index alone, None when there is none), the indices of its negated and after-a-contrast forms (None:
# not in the vocabulary), and whether it negates. (A lone index joins the message's list, not the arrays to join.)
_Token = tuple[npt.NDArray[np.int32] | int | None, int | None, int | None, bool]


@dataclass(frozen=True, slots=True)
class Head:
    """One classifier over the shared features."""

    classes: tuple[str, ...]
    coef: npt.NDArray[np.float32]  # (features, classes)
    intercept: npt.NDArray[np.float32]  # (classes,)


@dataclass(frozen=True, slots=True)
class Scored:
    """A message's present features and each head's log-probabilities."""

    indices: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float32]
    log_proba: dict[str, dict[str, float]]


class Model:
    """The feature vocabulary, idf weights and heads; build once (``load_model``) and reuse."""

    def __init__(self, vocabulary: list[str], idf: npt.NDArray[np.float32], heads: dict[str, Head]) -> None:
        self.vocabulary = vocabulary
        self.index = {feature: i for i, feature in enumerate(vocabulary)}
        self.idf = idf
        self.heads = heads
        self._tokens: dict[str, _Token] = {}
        # "b:<previous> <token>" by its two tokens: looked up without building the string (tokens hold no space)
        self._bigrams = {
            tuple(feature[2:].split(" ")): i
            for i, feature in enumerate(vocabulary)
            if feature.startswith("b:") and feature.count(" ") == 1
        }

    def _token(self, token: str) -> _Token:
        """What one token gives the features (cached: words repeat across messages)."""
        index = self.index
        own = [index.get("w:" + token)]
        if token.isalnum():  # words give their character n-grams too; punctuation and emoji do not
            own += map(index.get, char_grams(token))
        known = [i for i in own if i is not None]
        found = (
            np.array(known, dtype=np.int32) if len(known) > 1 else known[0] if known else None,
            index.get("!" + token),
            index.get(">" + token),
            token in NEGATIONS,
        )
        if len(self._tokens) >= _CACHE_LIMIT:
            self._tokens.clear()
        self._tokens[token] = found
        return found

    def vectorize(
        self,
        text: str,
        rating: int | None = None,
        dense: Mapping[str, float] | None = None,
        *,
        normalized: str | None = None,
        read_rating: bool = True,
        tokens: list[str] | None = None,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """The present features' indices and weights: idf, L2-normalised, then the dense ones as given.

        The features are ``features.analyse``'s (``normalized``, ``read_rating`` and ``tokens``: as
        ``features.cues_and_tokens`` takes them),
        found here as vocabulary indices directly, token by token: see ``features.analyse`` for the walk.
        """
        cues, tokens = cues_and_tokens(text, rating, normalized=normalized, read_rating=read_rating, tokens=tokens)
        get, bigrams = self.index.get, self._bigrams.get
        found = [i for i in map(get, cues) if i is not None]  # indices beside the tokens' own arrays
        parts = []
        last_contrast = -1 if CONTRASTS.isdisjoint(tokens) else max(i for i, t in enumerate(tokens) if t in CONTRASTS)
        negated_until = -1
        previous = "^"
        known = self._tokens
        for position, token in enumerate(tokens):
            own, negated, after, negation = known.get(token) or self._token(token)
            if isinstance(own, int):
                found.append(own)
            elif own is not None:
                parts.append(own)
            bigram = bigrams((previous, token))
            if bigram is not None:
                found.append(bigram)
            previous = token
            if negation:
                negated_until = position + NEGATION_WINDOW
            elif position <= negated_until and negated is not None:
                found.append(negated)
            if position > last_contrast >= 0 and after is not None:
                found.append(after)
        bigram = bigrams((previous, "$"))
        if bigram is not None:
            found.append(bigram)
        parts.append(np.fromiter(found, dtype=np.int32, count=len(found)))
        # sorted and unique (a feature counts once): one sort of all the parts, then the repeats dropped
        indices = np.concatenate(parts)
        indices.sort()
        if indices.size > 1:
            keep = np.empty(indices.size, dtype=bool)
            keep[0] = True
            np.not_equal(indices[1:], indices[:-1], out=keep[1:])
            indices = indices[keep]
        weights = self.idf.take(indices)
        norm = float(np.sqrt(np.dot(weights, weights)))
        if norm:
            weights = weights / norm
        if dense:
            index = self.index
            extra = [(index[name], value) for name, value in dense.items() if value and name in index]
            if extra:
                indices = np.concatenate((indices, np.array([i for i, _ in extra], dtype=np.int32)))
                weights = np.concatenate((weights, np.array([v for _, v in extra], dtype=np.float32)))
        return indices, weights

    def score(
        self,
        text: str,
        rating: int | None = None,
        dense: Mapping[str, float] | None = None,
        *,
        normalized: str | None = None,
        read_rating: bool = True,
        tokens: list[str] | None = None,
    ) -> Scored:
        """Every head's log-probabilities for one message (``normalized``, ``read_rating``, ``tokens``: see ``vectorize``)."""
        indices, weights = self.vectorize(
            text, rating, dense, normalized=normalized, read_rating=read_rating, tokens=tokens
        )
        log_proba: dict[str, dict[str, float]] = {}
        for name, head in self.heads.items():
            logits = weights @ head.coef.take(indices, axis=0) + head.intercept  # (take: fancy indexing's rows, faster)
            shifted = logits - max(logits.tolist())  # the same float32 maximum, without a numpy reduction
            logp = shifted - np.log(np.add.reduce(np.exp(shifted)))  # (what .sum() calls, without its Python layer)
            log_proba[name] = dict(zip(head.classes, logp.tolist(), strict=True))
        return Scored(indices, weights, log_proba)

    def contributions(self, scored: Scored, head: str, label: str, top: int = 8) -> list[tuple[str, float]]:
        """The features that pushed one class of one head most, with their share of its logit."""
        found = self.heads[head]
        column = found.classes.index(label)
        values = scored.weights * found.coef[scored.indices, column]
        order = np.argsort(-np.abs(values))[:top]
        return [(self.vocabulary[int(scored.indices[i])], float(values[i])) for i in order]

    def save(self, path: Path) -> None:
        """Write the model as plain arrays (see the module docstring)."""
        arrays: dict[str, npt.NDArray[np.generic]] = {
            "vocabulary": np.frombuffer("\n".join(self.vocabulary).encode(), dtype=np.uint8),
            "idf": self.idf,
        }
        for name, head in self.heads.items():
            arrays[f"{name}_classes"] = np.array(head.classes)
            arrays[f"{name}_coef"] = head.coef
            arrays[f"{name}_intercept"] = head.intercept
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> Model:
        """Read a model written by ``save``."""
        with np.load(path, allow_pickle=False) as data:
            vocabulary = bytes(data["vocabulary"]).decode().split("\n")
            heads = {
                name: Head(
                    tuple(str(c) for c in data[f"{name}_classes"]),
                    np.ascontiguousarray(data[f"{name}_coef"], dtype=np.float32),
                    np.asarray(data[f"{name}_intercept"], dtype=np.float32),
                )
                for name in HEADS
            }
            return cls(vocabulary, np.asarray(data["idf"], dtype=np.float32), heads)


def model_path() -> Path:
    """Where the shipped model is."""
    return Path(str(files("inbox.triage").joinpath("model.npz")))


@cache
def load_model() -> Model:
    """The shipped model, loaded once per process."""
    return Model.load(model_path())
