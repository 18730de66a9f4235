"""Train the triage model from the corpus: ``python -m inbox.triage.train``.

Deterministic: the same corpus gives the same ``model.npz`` (features sorted, no random state
used by the solver, which runs to the loss's one optimum: ``TOL``). Only the training split is read; the held-out split (``corpus.held_out``)
is never seen. Needs scikit-learn (``pip install -e '.[train]'``), which triage itself does not.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from inbox.triage.classify import keyword_scorer
from inbox.triage.corpus import Example, load_corpus, split
from inbox.triage.features import features
from inbox.triage.labels import Intent
from inbox.triage.model import Head, Model, model_path

__all__ = ["main", "train"]

DENSE_FEATURES = frozenset({f"#kw:{intent.value}" for intent in Intent} | {"#kw:+", "#kw:-"})
MIN_DF = 2  # a feature seen in one training message only is noise
C = {"intent": 40.0, "sentiment": 20.0}  # inverse regularisation, chosen by cross-validation on the training split
# The loss is strictly convex, so it has one optimum; fitted to this tolerance (Newton's steps get
# there in seconds) the coefficients are that optimum to about 1e-5 on any machine, and lbfgs fitted
# as tightly agrees within 1e-4. The default tolerance (1e-4) stopped lbfgs at a point that
# depended on the machine's numpy and scikit-learn, 0.03 away.
TOL = 1e-8


def _matrix(
    rows: list[list[str]], dense: list[dict[str, float]], index: dict[str, int], idf: npt.NDArray[np.float32]
) -> object:
    from scipy.sparse import csr_matrix

    indptr, indices, data = [0], [], []
    for feats, extra in zip(rows, dense, strict=True):
        present = sorted({index[f] for f in feats if f in index})
        weights = idf[present]
        norm = math.sqrt(float(np.dot(weights, weights))) or 1.0
        indices.extend(present)
        data.extend((weights / norm).tolist())
        for name, value in sorted(extra.items()):
            if value:
                indices.append(index[name])
                data.append(value)
        indptr.append(len(indices))
    return csr_matrix((np.array(data, dtype=np.float64), indices, indptr), shape=(len(rows), len(index)))


def _labels(examples: Sequence[Example], head: str) -> list[str]:
    return [ex.intent.value if head == "intent" else ex.sentiment for ex in examples]


def train(examples: Sequence[Example], c: dict[str, float] | None = None, solver: str = "newton-cg") -> Model:
    """A model fitted on the given (training) messages, at the optimum whatever the solver or machine."""
    from sklearn.linear_model import LogisticRegression

    scorer = keyword_scorer()
    rows = [features(ex.text, ex.rating) for ex in examples]
    dense = [scorer.keyword_features(ex.text, ex.language) for ex in examples]
    df = Counter(f for feats in rows for f in set(feats))
    vocabulary = sorted({f for f, count in df.items() if count >= MIN_DF and "\n" not in f} | DENSE_FEATURES)
    index = {f: i for i, f in enumerate(vocabulary)}
    n = len(rows)
    idf = np.array([math.log((1 + n) / (1 + df[f])) + 1 for f in vocabulary], dtype=np.float32)
    x = _matrix(rows, dense, index, idf)
    heads: dict[str, Head] = {}
    for head, strength in (c or C).items():
        fitted = LogisticRegression(C=strength, solver=solver, tol=TOL, max_iter=100_000, class_weight="balanced").fit(
            x, _labels(examples, head)
        )
        heads[head] = Head(
            tuple(str(label) for label in fitted.classes_),
            np.ascontiguousarray(fitted.coef_.T, dtype=np.float32),
            np.asarray(fitted.intercept_, dtype=np.float32),
        )
    return Model(vocabulary, idf, heads)


def _cross_validate(examples: Sequence[Example], folds: int = 5) -> None:
    """Accuracy of each C by k-fold on the training split (the held-out split stays untouched)."""
    for strength in (5.0, 10.0, 20.0, 40.0, 80.0):
        hits = Counter[str]()
        for fold in range(folds):
            fit = [ex for i, ex in enumerate(examples) if i % folds != fold]
            check = [ex for i, ex in enumerate(examples) if i % folds == fold]
            model = train(fit, {"intent": strength, "sentiment": strength})
            for ex in check:
                dense = keyword_scorer().keyword_features(ex.text, ex.language)
                scored = model.score(ex.text, ex.rating, dense).log_proba
                hits["intent"] += max(scored["intent"], key=scored["intent"].__getitem__) == ex.intent.value
                hits["sentiment"] += max(scored["sentiment"], key=scored["sentiment"].__getitem__) == ex.sentiment
        print(f"C={strength}: " + ", ".join(f"{h} {hits[h] / len(examples):.1%}" for h in ("intent", "sentiment")))


def main(argv: Sequence[str] | None = None) -> int:
    """Train on the corpus's training split and write the model."""
    parser = argparse.ArgumentParser(prog="python -m inbox.triage.train", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: corpus/triage)")
    parser.add_argument("--out", type=Path, default=None, help="where to write the model (default: the package's)")
    parser.add_argument("--cross-validate", action="store_true", help="only print k-fold accuracy for a range of C")
    args = parser.parse_args(argv)
    training, _held_out = split(load_corpus(args.corpus))
    if args.cross_validate:
        _cross_validate(training)
        return 0
    model = train(training)
    out = args.out or model_path()
    model.save(out)
    sys.stdout.write(f"{len(training)} training messages, {len(model.vocabulary)} features -> {out}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
