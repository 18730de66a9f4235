"""The shipped triage model: it reproduces from the corpus, never saw the held-out split, and holds up on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inbox.triage import Intent, Triager, load_rules
from inbox.triage.corpus import Example, default_challenge_dir, held_out, load_corpus, split
from inbox.triage.evaluate import evaluate
from inbox.triage.model import Model, load_model, model_path
from inbox.triage.train import main as train_main
from inbox.triage.train import train


def test_the_shipped_model_is_what_the_training_script_makes_from_the_corpus() -> None:
    training, _held_out = split(load_corpus())
    fresh, shipped = train(training), load_model()
    assert fresh.vocabulary == shipped.vocabulary
    assert np.allclose(fresh.idf, shipped.idf)
    for name, head in shipped.heads.items():
        assert fresh.heads[name].classes == head.classes
        assert np.allclose(fresh.heads[name].coef, head.coef, atol=1e-3)
        assert np.allclose(fresh.heads[name].intercept, head.intercept, atol=1e-3)


def test_the_fit_is_the_optimum_not_a_solver_path() -> None:
    """Two solvers that walk different paths land on the same coefficients: the shipped ones are the optimum."""
    examples = split(load_corpus())[0][::16]
    newton, lbfgs = train(examples), train(examples, solver="lbfgs")
    for name, head in newton.heads.items():
        assert np.allclose(lbfgs.heads[name].coef, head.coef, atol=1e-4)
        assert np.allclose(lbfgs.heads[name].intercept, head.intercept, atol=1e-4)


def test_the_model_is_small_and_plain_arrays() -> None:
    assert model_path().stat().st_size < 3_000_000
    with np.load(model_path(), allow_pickle=False) as data:  # nothing in it needs unpickling
        assert {"vocabulary", "idf", "intent_coef", "sentiment_coef"} <= set(data.files)


def test_training_never_sees_the_held_out_split(tmp_path: Path) -> None:
    def row(ex: Example, text: str) -> dict[str, str]:
        return {"text": text, "language": ex.language, "intent": ex.intent.value, "sentiment": ex.sentiment}

    examples = load_corpus()[:400]
    # A word only held-out messages carry, and a control word only training messages carry, each in many messages:
    # trained on, either would be a feature.
    held = [row(ex, f"{ex.text} zqxheld") for ex in examples if held_out(f"{ex.text} zqxheld")][:20]
    seen = [row(ex, f"{ex.text} zqxseen") for ex in examples if not held_out(f"{ex.text} zqxseen")][:20]
    plain = [row(ex, ex.text) for ex in examples[:150]]
    assert len(held) == len(seen) == 20
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "mixed.jsonl").write_text("".join(json.dumps(r) + "\n" for r in plain + held + seen), encoding="utf-8")
    out = tmp_path / "model.npz"
    assert train_main(["--corpus", str(corpus), "--out", str(out)]) == 0
    vocabulary = set(Model.load(out).vocabulary)
    assert "w:zqxseen" in vocabulary
    assert "w:zqxheld" not in vocabulary


def test_held_out_accuracy_stays_above_the_floor() -> None:
    _training, held = split(load_corpus())
    triager = Triager(load_rules())
    result = evaluate(
        held, lambda ex: triager.classify(ex.text, rating=ex.rating, kind="review" if ex.rating else "mention")
    )
    assert result.accuracy(result.intent_hits) >= 0.85
    assert result.accuracy(result.sentiment_hits) >= 0.85
    assert result.accuracy(result.language_hits) >= 0.93
    for language in result.n:
        assert result.accuracy(result.intent_hits, language) >= 0.75, language


def test_challenge_set_accuracy_stays_above_the_floor() -> None:
    # Scored as `inbox triage -` scores a line: no rating given, stars only as written in the text.
    triager = Triager(load_rules())
    result = evaluate(load_corpus(default_challenge_dir()), lambda ex: triager.classify(ex.text))
    assert result.accuracy(result.intent_hits) >= 0.85
    assert result.accuracy(result.sentiment_hits) >= 0.85
    assert result.accuracy(result.language_hits) >= 0.97
    for language in result.n:
        assert result.accuracy(result.intent_hits, language) >= 0.75, language


@pytest.mark.parametrize(
    ("text", "intent", "sentiment"),
    [
        ("Super, 3 semaines pour un colis, bravo 👏", Intent.DELIVERY, "negative"),
        ("Thanks for nothing, still no refund after a month", Intent.BILLING, "negative"),
        ("Hi, could I switch my delivery slot to Friday morning? order 30211", Intent.DELIVERY, "neutral"),
        ("Bonjour, pourriez-vous m'envoyer la facture de ma commande ? Merci d'avance", Intent.BILLING, "neutral"),
        ("Had the same issue, agent Paul fixed it for me, text him on WhatsApp +44 7700 900777", Intent.SPAM, None),
        ("Hello! I'm a travel blogger with 80k followers, open to a paid collaboration?", Intent.OTHER, None),
        ("★★★☆☆ comfy, but the sole peeled after 6 weeks", Intent.COMPLAINT, None),
        ("buna ziua, coletul nu a ajuns inca, tracking-ul zice delivered", Intent.DELIVERY, "negative"),
    ],
)
def test_the_difficult_kinds_of_message(text: str, intent: Intent, sentiment: str | None) -> None:
    result = Triager(load_rules()).classify(text)
    assert result.intent is intent
    assert sentiment is None or result.sentiment == sentiment
