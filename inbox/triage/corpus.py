"""The labelled triage corpus: loading it and its fixed held-out split.

The corpus lives in the repository (``corpus/triage/<language>.jsonl``, one JSON object per line:
``text``, ``language``, ``intent``, ``sentiment`` and an optional ``rating``); it does not ship with
the package, only the model trained from it does. A message is held out when a seeded hash of its
text says so: the split never changes when messages are added, and the training script never sees it.
``corpus/challenge`` (same format) is a separate set written apart from the corpus, by other rules of
thumb, as a stand-in for traffic nobody here wrote: it is only ever evaluated.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from inbox.triage.labels import Intent, Sentiment

__all__ = [
    "HELD_OUT_SHARE",
    "CorpusError",
    "Example",
    "default_challenge_dir",
    "default_corpus_dir",
    "held_out",
    "load_corpus",
    "split",
]

HELD_OUT_SHARE = 0.2
_SEED = "cx-inbox triage held-out v1"
_SENTIMENTS: tuple[Sentiment, ...] = ("negative", "neutral", "positive")


class CorpusError(ValueError):
    """A corpus line that is not a valid labelled message."""


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled message."""

    text: str
    language: str
    intent: Intent
    sentiment: Sentiment
    rating: int | None = None


def default_corpus_dir() -> Path:
    """``corpus/triage`` of the source checkout this module runs from."""
    return Path(__file__).resolve().parents[2] / "corpus" / "triage"


def default_challenge_dir() -> Path:
    """``corpus/challenge``: messages written apart from the corpus, never trained or tuned on."""
    return Path(__file__).resolve().parents[2] / "corpus" / "challenge"


def held_out(text: str) -> bool:
    """Whether a message belongs to the held-out split (a seeded hash of its text, about 20%)."""
    digest = hashlib.sha256(f"{_SEED}\0{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") < HELD_OUT_SHARE * 2**64


def _example(data: object, where: str) -> Example:
    if not isinstance(data, dict):
        raise CorpusError(f"{where}: not a JSON object")
    text, language, intent, sentiment = (data.get(k) for k in ("text", "language", "intent", "sentiment"))
    rating = data.get("rating")
    if not isinstance(text, str) or not text.strip():
        raise CorpusError(f"{where}: text must be a non-empty string")
    if not isinstance(language, str) or intent not in set(Intent) or sentiment not in _SENTIMENTS:
        raise CorpusError(f"{where}: bad language, intent or sentiment")
    if rating is not None and (not isinstance(rating, int) or not 1 <= rating <= 5):
        raise CorpusError(f"{where}: rating must be 1 to 5")
    if set(data) - {"text", "language", "intent", "sentiment", "rating"}:
        raise CorpusError(f"{where}: unknown keys {sorted(set(data) - {'text', 'language', 'intent', 'sentiment'})}")
    return Example(text, language, Intent(str(intent)), sentiment, rating)


def load_corpus(directory: Path | None = None) -> list[Example]:
    """Every labelled message of the corpus folder's ``*.jsonl`` files, in file then line order."""
    folder = directory or default_corpus_dir()
    examples: list[Example] = []
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise CorpusError(f"{folder}: no *.jsonl corpus files")
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusError(f"{path.name}:{number}: {exc}") from exc
                examples.append(_example(data, f"{path.name}:{number}"))
    return examples


def split(examples: Iterable[Example]) -> tuple[list[Example], list[Example]]:
    """(training, held-out) messages."""
    train: list[Example] = []
    test: list[Example] = []
    for example in examples:
        (test if held_out(example.text) else train).append(example)
    return train, test
