"""What triage answers: the labels of one message, whatever method finds them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = ["Intent", "Priority", "Sentiment", "TriageResult"]

Sentiment = Literal["negative", "neutral", "positive"]


class Intent(StrEnum):
    """What the customer wants; exactly one per item."""

    DELIVERY = "delivery"
    BILLING = "billing"
    QUESTION = "question"
    COMPLAINT = "complaint"
    PRAISE = "praise"
    SPAM = "spam"
    OTHER = "other"


class Priority(StrEnum):
    """How soon an agent should look at the item."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        """Sort key: low=0, normal=1, high=2, urgent=3."""
        return PRIORITY_ORDER.index(self)


PRIORITY_ORDER: tuple[Priority, ...] = tuple(Priority)


@dataclass(frozen=True, slots=True)
class TriageResult:
    """The triage of one item."""

    language: str
    sentiment: Sentiment
    intent: Intent
    priority: Priority
