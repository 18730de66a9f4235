"""The labelled corpus, its held-out split and the evaluation report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from inbox.triage import Intent, TriageResult
from inbox.triage.corpus import CorpusError, Example, default_challenge_dir, held_out, load_corpus, split
from inbox.triage.evaluate import evaluate, main, markdown
from inbox.triage.labels import Priority


def test_corpus_is_big_covers_every_intent_in_every_language_and_core_languages_are_richest() -> None:
    examples = load_corpus()
    assert len(examples) >= 1500
    per_language = Counter(ex.language for ex in examples)
    assert set(per_language) == {"en", "fr", "ro", "de", "es", "it", "nl", "pt"}
    for lang in ("de", "es", "it", "nl", "pt"):
        assert min(per_language[core] for core in ("en", "fr", "ro")) > per_language[lang]
    pairs = Counter((ex.language, ex.intent) for ex in examples)
    assert min(pairs[(lang, intent)] for lang in per_language for intent in Intent) >= 10
    assert len({ex.text for ex in examples}) == len(examples)  # no message twice
    assert {ex.sentiment for ex in examples} == {"negative", "neutral", "positive"}
    assert any(ex.rating is not None for ex in examples)


def test_held_out_split_is_fixed_about_a_fifth_and_disjoint() -> None:
    training, held = split(load_corpus())
    assert 0.15 <= len(held) / (len(training) + len(held)) <= 0.25
    assert not {ex.text for ex in training} & {ex.text for ex in held}
    assert all(held_out(ex.text) for ex in held)
    assert not any(held_out(ex.text) for ex in training)
    per_language = Counter(ex.language for ex in held)
    assert min(per_language.values()) >= 15


def test_challenge_set_has_every_intent_in_every_language_and_shares_no_message_with_the_corpus() -> None:
    challenge = load_corpus(default_challenge_dir())
    per_language = Counter(ex.language for ex in challenge)
    assert per_language == dict.fromkeys(("en", "fr", "ro", "de", "es", "it", "nl", "pt"), 30)
    pairs = Counter((ex.language, ex.intent) for ex in challenge)
    assert min(pairs[(lang, intent)] for lang in per_language for intent in Intent) >= 3
    assert len({ex.text for ex in challenge}) == len(challenge)
    assert not {ex.text.casefold() for ex in challenge} & {ex.text.casefold() for ex in load_corpus()}


def test_second_challenge_set_has_every_intent_in_every_language_and_is_apart_from_the_rest() -> None:
    second = load_corpus(default_challenge_dir().with_name("challenge2"))
    per_language = Counter(ex.language for ex in second)
    assert per_language == dict.fromkeys(("en", "fr", "ro", "de", "es", "it", "nl", "pt"), 12)
    assert {(lang, intent) for lang in per_language for intent in Intent} <= {(ex.language, ex.intent) for ex in second}
    elsewhere = {ex.text.casefold() for ex in load_corpus() + load_corpus(default_challenge_dir())}
    assert not {ex.text.casefold() for ex in second} & elsewhere


@pytest.mark.parametrize(
    ("name", "size", "earlier"), [("challenge4", 8, ("", "2", "3")), ("challenge6", 12, ("", "2", "3", "4", "5"))]
)
def test_a_later_challenge_set_has_every_intent_in_every_language_and_is_apart_from_the_rest(
    name: str, size: int, earlier: tuple[str, ...]
) -> None:
    folder = load_corpus(default_challenge_dir().with_name(name))
    per_language = Counter(ex.language for ex in folder)
    assert per_language == dict.fromkeys(("en", "fr", "ro", "de", "es", "it", "nl", "pt"), size)
    assert {(lang, intent) for lang in per_language for intent in Intent} <= {(ex.language, ex.intent) for ex in folder}
    others = [default_challenge_dir().with_name(f"challenge{n}") for n in earlier]
    elsewhere = load_corpus() + [ex for other in others for ex in load_corpus(other)]
    assert not {ex.text.casefold() for ex in folder} & {ex.text.casefold() for ex in elsewhere}


@pytest.mark.parametrize(("name", "earlier"), [("challenge3", ("", "2")), ("challenge5", ("", "2", "3", "4"))])
def test_a_twenty_per_language_challenge_set_covers_every_intent_twice_and_is_apart_from_the_rest(
    name: str, earlier: tuple[str, ...]
) -> None:
    folder = load_corpus(default_challenge_dir().with_name(name))
    per_language = Counter(ex.language for ex in folder)
    assert per_language == dict.fromkeys(("en", "fr", "ro", "de", "es", "it", "nl", "pt"), 20)
    pairs = Counter((ex.language, ex.intent) for ex in folder)
    assert min(pairs[(lang, intent)] for lang in per_language for intent in Intent) >= 2
    assert len({ex.text for ex in folder}) == len(folder)
    others = [default_challenge_dir().with_name(f"challenge{n}") for n in earlier]
    elsewhere = load_corpus() + [ex for other in others for ex in load_corpus(other)]
    assert not {ex.text.casefold() for ex in folder} & {ex.text.casefold() for ex in elsewhere}


def test_a_bad_corpus_line_names_its_file_and_line(tmp_path: Path) -> None:
    good = {"text": "hi", "language": "en", "intent": "other", "sentiment": "neutral"}
    (tmp_path / "en.jsonl").write_text(
        json.dumps(good) + "\n" + json.dumps({**good, "intent": "nonsense"}) + "\n", encoding="utf-8"
    )
    with pytest.raises(CorpusError, match=r"en\.jsonl:2"):
        load_corpus(tmp_path)


def test_evaluation_counts_hits_and_confusions() -> None:
    examples = [
        Example("a", "en", Intent.DELIVERY, "negative"),
        Example("b", "fr", Intent.BILLING, "neutral"),
    ]

    def classify(example: Example) -> TriageResult:
        return TriageResult(language="en", sentiment="negative", intent=Intent.DELIVERY, priority=Priority.LOW)

    result = evaluate(examples, classify)
    assert result.accuracy(result.intent_hits) == 0.5
    assert result.accuracy(result.language_hits, "fr") == 0.0
    assert result.intents[("billing", "delivery")] == 1
    table = markdown(result)
    assert "| **all** | 2 | 50.0% | 50.0% | 50.0% |" in table
    assert "| **billing** | 1 | · |" in table


def test_evaluate_command_prints_the_tables(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = [
        {
            "text": "where is my parcel, it is two weeks late",
            "language": "en",
            "intent": "delivery",
            "sentiment": "negative",
        },
        {"text": "Thank you so much, great service!", "language": "en", "intent": "praise", "sentiment": "positive"},
    ]
    (tmp_path / "en.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["--corpus", str(tmp_path), "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("all split: 2 messages")
    assert "Intent confusion" in out
