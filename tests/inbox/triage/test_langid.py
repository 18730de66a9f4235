"""The shipped language-ID model: what the script makes from the training split, small, held-out free."""

from __future__ import annotations

from pathlib import Path

from inbox.triage import langid_train
from inbox.triage.corpus import load_corpus, split
from inbox.triage.langid import LanguageModel, features, model_path
from inbox.triage.langid_train import lexicon_texts, train, training_texts


def test_the_shipped_model_is_what_the_training_script_makes(tmp_path: Path) -> None:
    out = tmp_path / "langid.npz"
    assert langid_train.main(["--out", str(out)]) == 0
    assert LanguageModel.load(out).same_as(LanguageModel.load()), "retrain: python -m inbox.triage.langid_train"


def test_the_model_is_small() -> None:
    assert model_path().stat().st_size < 1_000_000
    assert LanguageModel.load().languages == ("de", "en", "es", "fr", "it", "nl", "pt", "ro")


def test_training_never_sees_the_held_out_split() -> None:
    training, held = split(load_corpus())
    texts = training_texts()
    lexicon = lexicon_texts()
    assert texts[len(training) :] == lexicon  # the corpus part is the training split, then the lexicons' terms
    assert held and not {ex.text for ex in held} & {text for text, _ in texts[: len(training)]}
    assert {text for text, _ in texts[: len(training)]} == {ex.text for ex in training}


def test_features_are_character_ngrams_and_the_word() -> None:
    assert features("Aé 12") == ["a", "é", " a", "aé", "é ", " aé", "aé ", " aé ", "w:aé"]


def test_naive_bayes_scores_the_languages_by_their_ngrams() -> None:
    model = train([("colis perdu merci", "fr"), ("parcel lost thanks", "en")])
    scores = model.log_probabilities("merci pour le colis")
    assert max(scores, key=scores.__getitem__) == "fr"
    assert model.log_probabilities("12 !!") == {}
    unseen = model.log_probabilities("sans")  # no word seen, but its letters and n-grams were
    assert max(unseen, key=unseen.__getitem__) == "en"
