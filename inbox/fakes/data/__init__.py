"""Recorded and documented vendor payloads the fakes serve and the tests read; each folder's SOURCE.md says where each came from."""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def payload(vendor: str, name: str) -> Any:
    """One JSON payload of a vendor's folder, parsed."""
    return json.loads(files(__package__).joinpath(vendor, name).read_text(encoding="utf-8"))


def recorded_body(vendor: str, cassette: str, interaction: int) -> Any:
    """The JSON body of one answer in a vcrpy JSON cassette (asyncpraw's), parsed."""
    return json.loads(payload(vendor, cassette)["interactions"][interaction]["response"]["body"]["string"])
