"""Triage of one customer message: language, sentiment, intent and priority.

Pure logic, no database and no network. Everything tunable lives in the rules
(``config/triage.toml`` and one lexicon file per language under ``config/triage/lexicons/``
ship the defaults; see their comments for every knob). The modules, each importing only
those before it:

- ``labels``: what triage answers (``Intent``, ``Priority``, ``Sentiment``, ``TriageResult``);
- ``text``: normalisation, the one form customer text and listed terms are compared in;
- ``rules``: the rules' schema, the shipped files and an admin's file merged over them;
- ``matcher``: finding listed terms (words, phrases, prefixes) in a message;
- ``langid``: the shipped language-ID model (naive Bayes over character n-grams), numpy only;
- ``language``: cheap evidence, then lingua's low-accuracy mode with ``langid`` (the memory knob, warm-up);
- ``features``: what the learned model sees of a message (character and word n-grams, cues);
- ``model``: the shipped linear model (``model.npz``), scored with numpy;
- ``classify``: the model and the rules together give sentiment, intent and priority (the ``Triager``).

Beside them, for the project rather than at run time: ``corpus`` (the labelled corpus and its
held-out split), ``train`` (``python -m inbox.triage.train``), ``langid_train``
(``python -m inbox.triage.langid_train``) and ``evaluate``
(``python -m inbox.triage.evaluate``).
"""

from inbox.triage.classify import Explanation, Triager, explanation_json
from inbox.triage.labels import Intent, Priority, Sentiment, TriageResult
from inbox.triage.rules import RulesError, TriageRules, load_rules, shipped_config, validate_rules
from inbox.triage.text import normalize

__all__ = [
    "Explanation",
    "Intent",
    "Priority",
    "RulesError",
    "Sentiment",
    "TriageResult",
    "TriageRules",
    "Triager",
    "explanation_json",
    "load_rules",
    "normalize",
    "shipped_config",
    "validate_rules",
]
