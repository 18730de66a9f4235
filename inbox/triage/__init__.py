"""Triage of one customer message: language, sentiment, intent and priority."""

from inbox.triage.classify import (
    Intent,
    Priority,
    RulesError,
    Sentiment,
    TriageResult,
    TriageRules,
    Triager,
    load_rules,
    normalize,
    shipped_config,
)

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
]
