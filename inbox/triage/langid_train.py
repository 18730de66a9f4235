"""Train the shipped language-ID model: ``python -m inbox.triage.langid_train``.

Deterministic: the same corpus and lexicons give the same ``langid.npz`` (languages and features
sorted, plain counting). Only the corpus's training split is read, never the held-out split.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inbox.triage.corpus import load_corpus, split
from inbox.triage.langid import LanguageModel, features, model_path
from inbox.triage.rules import load_rules

__all__ = ["ALPHA", "lexicon_texts", "main", "train", "training_texts"]

ALPHA = 0.5  # additive smoothing, chosen by 5-fold cross-validation on the training split


def training_texts() -> list[tuple[str, str]]:
    """(text, language): the corpus's training split, then every term of the shipped lexicons."""
    return [(ex.text, ex.language) for ex in split(load_corpus())[0]] + lexicon_texts()


def lexicon_texts() -> list[tuple[str, str]]:
    """(term, language) for every term of the shipped lexicons of the configured languages."""
    rules = load_rules()
    texts: list[tuple[str, str]] = []
    for language in rules.languages:
        lex = rules.lexicon.get(language)
        if lex is None:
            continue
        terms = [*lex.stopwords, *lex.negations, *lex.neutral, *lex.positive, *lex.negative, *lex.escalation]
        for weights in lex.intents.values():
            terms.extend(weights)
        texts.extend((term.rstrip("*"), language) for term in terms)
    return texts


def train(texts: Iterable[tuple[str, str]]) -> LanguageModel:
    """Multinomial naive Bayes with additive smoothing ``ALPHA``; languages and features sorted."""
    pairs = list(texts)
    languages = sorted({language for _, language in pairs})
    column = {language: j for j, language in enumerate(languages)}
    counts: dict[str, npt.NDArray[np.float64]] = {}
    for text, language in pairs:
        for feature in features(text):
            row = counts.get(feature)
            if row is None:
                row = counts[feature] = np.zeros(len(languages))
            row[column[language]] += 1
    vocabulary = sorted(counts)
    matrix = np.array([counts[f] for f in vocabulary]) + ALPHA
    log_probs = np.log(matrix / matrix.sum(axis=0)).astype(np.float32)
    return LanguageModel(languages, vocabulary, log_probs)


def main(argv: list[str] | None = None) -> int:
    """Rebuild ``langid.npz`` from the corpus's training split and the shipped lexicons."""
    parser = argparse.ArgumentParser(prog="python -m inbox.triage.langid_train", description=main.__doc__)
    parser.add_argument("--out", type=Path, default=model_path(), help="where to write the model")
    args = parser.parse_args(argv)
    model = train(training_texts())
    model.save(args.out)
    print(f"{args.out}: {len(model.languages)} languages, {len(model.vocabulary):,} features", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
