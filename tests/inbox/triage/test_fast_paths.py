"""The hot path's shortcuts give exactly what the plain computations give, on the whole corpus.

Triage reads a message once and shares the matches between its steps, the model's vectorizer
walks the tokens with their vocabulary indices remembered (not the training's feature strings), both
models cut n-grams with remembered slices, the language-ID model skips per-word arrays, and the
phishing patterns were rewritten to run in linear time. Each check here runs the shortcut and the plain computation (the training features,
a running sum, the former backtracking patterns, the keyword scorer's own pass) over every corpus
and challenge message and a seeded typo of each, and asks for the same answer to the last bit.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
from lingua import LanguageDetector as Lingua

from inbox.triage import Triager, load_rules
from inbox.triage import features as features_module
from inbox.triage import text as text_module
from inbox.triage.classify import _keyword_dense, keyword_scorer
from inbox.triage.corpus import Example, default_challenge_dir, default_corpus_dir, load_corpus
from inbox.triage.features import char_grams, features, inline_rating
from inbox.triage.langid import _grams, _word_features, shipped_model
from inbox.triage.language import Detector
from inbox.triage.model import load_model
from inbox.triage.rules import shipped_rules
from inbox.triage.text import Guarded, normalize, prepare

_KEYWORDS = (
    "verif|secur|sicher|segur|sigur|veilig|login|account|acct|konto|compte|cuenta|conta|conto|rekening|protec"
    "|protez|updat|aktualis|actualiz|atualiz|unlock|deblo|desbloq|sblocc|entsperr|restore|suspen|confirm|bestaetig"
)
# The phishing patterns as first shipped: right, but backtracking (quadratic on long hyphenated runs).
_FORMER_PHISHING = (
    rf"(?:{_KEYWORDS})[a-z0-9]*-[a-z0-9-]*\.[a-z]{{2,6}}\b",
    rf"-(?:{_KEYWORDS})[a-z0-9-]*\.[a-z]{{2,6}}\b",
)


def _examples() -> list[Example]:
    folders = [default_corpus_dir(), *sorted(default_challenge_dir().parent.glob("challenge*"))]
    return [example for folder in folders if folder.is_dir() for example in load_corpus(folder)]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    """Every corpus and challenge message, and each with one seeded typo (words no cache has seen)."""
    plain = [example.text for example in _examples()]
    rng = random.Random(14)
    typos = []
    for text in plain:
        at = rng.randrange(len(text))
        typos.append(text[:at] + text[at + 1 :])
    return plain + typos


def _phishing_patterns() -> list[str]:
    spam = shipped_rules().lexicon["common"].patterns
    return [pattern for pattern in spam[next(iter(spam))] if "verif|secur" in pattern]


def test_the_phishing_patterns_match_where_their_backtracking_forms_did(texts: list[str]) -> None:
    shipped = _phishing_patterns()
    assert len(shipped) == len(_FORMER_PHISHING)
    rng = random.Random(7)
    pieces = [*_KEYWORDS.split("|"), "-", "--", ".", ".com", ".ro", ".c", ".comm", ".x1", " ", "a", "9", "_", "é", "\n"]
    fuzz = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12))) for _ in range(20_000)]
    samples = [prepare(text, 4000).full for text in texts] + fuzz
    for former, pattern in zip(_FORMER_PHISHING, shipped, strict=True):
        old, new = re.compile(former), re.compile(pattern)
        assert [s for s in samples if bool(old.search(s)) != bool(new.search(s))] == []
        assert sum(bool(new.search(s)) for s in samples) > 100  # the comparison saw many matches


def test_the_vectorizer_gives_the_training_features(texts: list[str]) -> None:
    model = load_model()
    for text in texts:
        rating = inline_rating(text)
        expected = np.unique([model.index[f] for f in features(text) if f in model.index]).astype(np.int32)
        # triage gives the rating it read (None: there is none), the normalised text and the tokens it has
        prepared = prepare(text, len(text))
        for indices, weights in (
            model.vectorize(text),
            model.vectorize(text, rating, normalized=normalize(text), read_rating=False),
            model.vectorize(text, rating, normalized=prepared.full, read_rating=False, tokens=prepared.tokens),
        ):
            assert np.array_equal(indices, expected), text
            assert weights.dtype == np.float32


def test_guarded_patterns_find_what_their_patterns_find(texts: list[str]) -> None:
    """Each guard matches wherever its pattern does: searching it first changes nothing that is found."""
    guarded = [g for module in (features_module, text_module) for g in vars(module).values() if isinstance(g, Guarded)]
    assert len(guarded) >= 5
    rng = random.Random(11)
    pieces = [
        "1",
        "3",
        "10",
        "5",
        " ",
        "/",
        "stars",
        "etoiles",
        "sur 5 ",
        "days",
        "zile",
        "'",
        '"',
        "«",
        "»",
        "in transit",
    ]
    pieces += ["AB", "ÉTÉ", "Ab", "a", "_", "+", "44", "7700", "(", ")", "-", ".", "\n", "@x", "é"]
    fuzz = ["".join(rng.choice(pieces) for _ in range(rng.randrange(1, 14))) for _ in range(20_000)]
    samples = [form for text in texts for form in (text, normalize(text))] + fuzz
    for each in guarded:
        found = [match.span() if (match := each.pattern.search(s)) else None for s in samples]
        assert [m.span() if (m := each.search(s)) else None for s in samples] == found, each.pattern.pattern
        assert [each.findall(s) for s in samples] == [each.pattern.findall(s) for s in samples]
        assert sum(span is not None for span in found) > 50  # the comparison saw many matches


def test_normalize_translates_only_texts_with_a_special_letter(texts: list[str]) -> None:
    """`normalize` skips the letter-by-letter translation where no letter it maps is present: the same text."""
    rng = random.Random(3)
    letters = "aAéÉœŒæÆøØłŁđĐıİ’‘`´ ßﬁ!?x"
    fuzz = ["".join(rng.choice(letters) for _ in range(rng.randrange(8))) for _ in range(20_000)]
    for text in texts + fuzz:
        if text.isascii():
            plain = text.lower().translate(text_module._SPECIAL)
        else:
            decomposed = text_module.unicodedata.normalize("NFKD", text.casefold())
            plain = text_module._MARKS_RE.sub("", decomposed).translate(text_module._SPECIAL)
        assert normalize(text) == plain, text


def test_n_grams_by_remembered_slices_are_the_plain_ones(texts: list[str]) -> None:
    words = {word for text in texts for word in re.findall(r"\w+", normalize(text))}
    words |= {"a", "x" * 62, "x" * 63, "y" * 200, "é" * 70}  # around the length where slices stop being remembered
    for word in words:
        padded = f" {word} "
        size = len(padded)
        assert char_grams(word) == [padded[i : i + n] for n in (2, 3, 4, 5) if n <= size for i in range(size - n + 1)]
        plain = [padded[i : i + n] for n in range(1, 5) for i in range(size - n + 1)]
        assert _grams(word) == [*plain, f"w:{word}"]


def test_the_model_scores_as_the_plain_softmax_does(texts: list[str]) -> None:
    model = load_model()
    for text in texts[::4]:
        scored = model.score(text)
        for name, head in model.heads.items():
            logits = scored.weights @ head.coef[scored.indices] + head.intercept
            shifted = logits - logits.max()
            logp = shifted - np.log(np.exp(shifted).sum())
            assert scored.log_proba[name] == dict(zip(head.classes, logp.tolist(), strict=True)), text


def test_language_id_scores_equal_a_running_sum_over_the_words(texts: list[str]) -> None:
    model = shipped_model()
    index = {feature: row for row, feature in enumerate(model.vocabulary)}
    table = model._log_probs
    for text in texts:
        total = np.zeros(len(model.languages), dtype=np.float64)
        known = False
        for word in re.findall(r"[^\W\d_]+", text.lower()):
            rows = [index[f] for f in _word_features(word) if f in index]
            if rows:
                total = total + table[rows].sum(axis=0, dtype=np.float64)
                known = True
        got = model.log_probabilities(text)
        if not known:
            assert got == {}
            continue
        shifted = total - total.max()
        shifted -= np.log(np.exp(shifted).sum())
        assert got == dict(zip(model.languages, shifted.tolist(), strict=True)), text


@pytest.mark.parametrize("rules_file", [None, "admin"])
def test_one_pass_gives_what_the_keyword_scorer_gave(texts: list[str], rules_file: str | None, tmp_path: Path) -> None:
    """The triager's own matches feed the model as the keyword scorer's separate pass did."""
    path = None
    if rules_file:  # an admin's terms, weights and pattern: the keyword scorer must then run its own pass
        path = tmp_path / "rules.toml"
        path.write_text(
            '[lexicon.fr.intents.delivery]\n"colis" = 3\n[lexicon.en.positive]\n"awesome" = 4\n'
            "[lexicon.common.patterns.spam]\n'promo\\s*code' = 2\n",
            encoding="utf-8",
        )
    fast = Triager(load_rules(path))
    plain = Triager(load_rules(path))
    plain._own_keywords = False  # the former path: `keyword_scorer` reads the message again
    assert fast._own_keywords is (path is None)
    scorer = keyword_scorer()
    for text in texts[::3]:
        for rating in (None, 2):
            assert fast.explain(text, rating=rating) == plain.explain(text, rating=rating), text
        if path is None:
            prepared = prepare(text, fast.rules.max_text_chars)
            language = fast.detector.detect(prepared)
            hits = fast._matcher.find(prepared.tokens)
            unshouted, intents, _escalation = fast._score(prepared, language, hits, fast._found_patterns(prepared))
            assert _keyword_dense(unshouted, intents) == scorer.keyword_features(text, language), text


def test_lingua_is_skipped_only_where_it_could_not_change_the_language(texts: list[str]) -> None:
    rules = load_rules()
    fast = Detector(rules)
    # a confidence threshold makes the detector ask lingua every time (and none is ever under 1e-9)
    detection = rules.detection.model_copy(update={"low_accuracy_min_confidence": 1e-9})
    plain = Detector(rules.model_copy(update={"detection": detection}))
    asked = 0
    built = fast._detector

    def counted(*, high: bool) -> Lingua:
        nonlocal asked
        asked += 1
        return built(high=high)

    fast._detector = counted  # type: ignore[method-assign]
    for text in texts:
        prepared = prepare(text, rules.max_text_chars)
        assert fast.detect(prepared) == plain.detect(prepared), text
    print(f"lingua asked for {asked} of {len(texts)} messages")
    assert asked < len(texts) / 2  # lingua is left out of most of them (115 of 6,400 asked it on 2026-12-07)
