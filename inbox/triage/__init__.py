"""Triage of one customer message: language, sentiment, intent and priority.

Pure logic, no database and no network. Everything tunable lives in the rules
(``config/triage.toml`` and one lexicon file per language under ``config/triage/lexicons/``
ship the defaults; see their comments for every knob). The modules, each importing only
those before it:

- ``labels``: what triage answers (``Intent``, ``Priority``, ``Sentiment``, ``TriageResult``);
- ``text``: normalisation, the one form customer text and listed terms are compared in;
- ``rules``: the rules' schema, the shipped files and an admin's file merged over them;
- ``matcher``: finding listed terms (words, phrases, prefixes) in a message;
- ``language``: cheap evidence, then lingua (its models, the memory knob, warm-up);
- ``classify``: scoring sentiment, intent and priority with the keyword rules (the ``Triager``).
"""

from inbox.triage.classify import Triager
from inbox.triage.labels import Intent, Priority, Sentiment, TriageResult
from inbox.triage.rules import RulesError, TriageRules, load_rules, shipped_config, validate_rules
from inbox.triage.text import normalize

__all__ = [
    "Intent",
    "Priority",
    "RulesError",
    "Sentiment",
    "TriageResult",
    "TriageRules",
    "Triager",
    "load_rules",
    "normalize",
    "shipped_config",
    "validate_rules",
]
