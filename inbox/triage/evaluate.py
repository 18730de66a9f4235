"""Accuracy of triage on the labelled corpus: ``python -m inbox.triage.evaluate``.

Prints Markdown (the tables in docs/triage.md come from here): language, intent and sentiment
accuracy per language, precision and recall per intent, and the intent and sentiment confusion
matrices, on the held-out split by default, or on the challenge set (``--split challenge``).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inbox.triage.corpus import Example, default_challenge_dir, load_corpus, split
from inbox.triage.labels import Intent, TriageResult

__all__ = ["Evaluation", "evaluate", "main", "markdown"]

_SENTIMENTS = ("negative", "neutral", "positive")


@dataclass(slots=True)
class Evaluation:
    """Counts of hits and confusions over a set of labelled messages."""

    n: Counter[str] = field(default_factory=Counter)  # per language
    language_hits: Counter[str] = field(default_factory=Counter)
    intent_hits: Counter[str] = field(default_factory=Counter)
    sentiment_hits: Counter[str] = field(default_factory=Counter)
    intents: Counter[tuple[str, str]] = field(default_factory=Counter)  # (expected, got)
    sentiments: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """How many messages were scored."""
        return sum(self.n.values())

    def accuracy(self, hits: Counter[str], language: str | None = None) -> float:
        """Share of hits overall or in one language."""
        if language is not None:
            return hits[language] / self.n[language] if self.n[language] else 0.0
        return sum(hits.values()) / self.total if self.total else 0.0


def evaluate(examples: Iterable[Example], classify: Callable[[Example], TriageResult]) -> Evaluation:
    """Classify every example and count what matched its labels."""
    result = Evaluation()
    for example in examples:
        got = classify(example)
        lang = example.language
        result.n[lang] += 1
        result.language_hits[lang] += got.language == lang
        result.intent_hits[lang] += got.intent == example.intent
        result.sentiment_hits[lang] += got.sentiment == example.sentiment
        result.intents[(example.intent.value, got.intent.value)] += 1
        result.sentiments[(example.sentiment, got.sentiment)] += 1
    return result


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _matrix(title: str, labels: Sequence[str], counts: Counter[tuple[str, str]]) -> list[str]:
    lines = [f"| {title} | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for expected in labels:
        row = [str(counts[(expected, got)]) if counts[(expected, got)] else "·" for got in labels]
        lines.append(f"| **{expected}** | " + " | ".join(row) + " |")
    return lines


def markdown(result: Evaluation) -> str:
    """The evaluation as Markdown tables."""
    lines = ["| language | n | language | intent | sentiment |", "|---|---:|---:|---:|---:|"]
    for lang in sorted(result.n, key=lambda code: (-result.n[code], code)):
        lines.append(
            f"| {lang} | {result.n[lang]} | {_pct(result.accuracy(result.language_hits, lang))} "
            f"| {_pct(result.accuracy(result.intent_hits, lang))} | {_pct(result.accuracy(result.sentiment_hits, lang))} |"
        )
    lines.append(
        f"| **all** | {result.total} | {_pct(result.accuracy(result.language_hits))} "
        f"| {_pct(result.accuracy(result.intent_hits))} | {_pct(result.accuracy(result.sentiment_hits))} |"
    )
    intents = [intent.value for intent in Intent]
    lines += ["", "| intent | n | precision | recall |", "|---|---:|---:|---:|"]
    for intent in intents:
        expected = sum(c for (e, _), c in result.intents.items() if e == intent)
        predicted = sum(c for (_, g), c in result.intents.items() if g == intent)
        hit = result.intents[(intent, intent)]
        precision = _pct(hit / predicted) if predicted else "–"
        recall = _pct(hit / expected) if expected else "–"
        lines.append(f"| {intent} | {expected} | {precision} | {recall} |")
    lines += ["", "Intent confusion (rows: expected, columns: triage's answer):", ""]
    lines += _matrix("expected \\ got", intents, result.intents)
    lines += ["", "Sentiment confusion (rows: expected, columns: triage's answer):", ""]
    lines += _matrix("expected \\ got", _SENTIMENTS, result.sentiments)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Score the shipped triage (or the given rules, or the rules alone) on a split of the corpus; print Markdown."""
    from inbox.triage.classify import Triager
    from inbox.triage.rules import load_rules

    parser = argparse.ArgumentParser(prog="python -m inbox.triage.evaluate", description=__doc__)
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (default: corpus/triage)")
    parser.add_argument(
        "--split",
        choices=("held-out", "training", "all", "challenge"),
        default="held-out",
        help="a split of the corpus, or the whole challenge set (corpus/challenge, never trained on)",
    )
    parser.add_argument("--rules", type=Path, default=None, help="an admin rules file merged over the shipped rules")
    parser.add_argument("--rules-only", action="store_true", help="the keyword rules alone, without the model")
    args = parser.parse_args(argv)
    if args.split == "challenge":
        examples = load_corpus(args.corpus or default_challenge_dir())
    else:
        training, held = split(load_corpus(args.corpus))
        examples = {"held-out": held, "training": training, "all": training + held}[args.split]
    triager = Triager(load_rules(args.rules), rules_only=args.rules_only)
    result = evaluate(
        examples, lambda ex: triager.classify(ex.text, rating=ex.rating, kind="review" if ex.rating else "mention")
    )
    sys.stdout.write(f"{args.split} split: {result.total} messages\n\n" + markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
