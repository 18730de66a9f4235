"""What the triage tests share: the labelled messages and a Triager with the shipped rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from inbox.triage import Triager, TriageResult, load_rules

DATA = Path(__file__).parent / "data" / "labelled_messages.jsonl"
CORE_LANGUAGES = ("fr", "ro", "en")
EXTRA_LANGUAGES = ("es", "de", "it", "pt", "nl")


def labelled_rows() -> list[dict[str, Any]]:
    """The labelled real-world-style messages, one dict per line of the data file."""
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def triager() -> Triager:
    return Triager(load_rules())


def classify_row(triager: Triager, row: dict[str, Any]) -> TriageResult:
    """The triage of one labelled message, with its rating and kind."""
    return triager.classify(row["text"], rating=row.get("rating"), kind=row["kind"])
