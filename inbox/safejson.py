"""JSON from outside (pushes, Slack, vendors) parsed with a bound on its nesting, so no input can exhaust the stack."""

from __future__ import annotations

import json
import re
from typing import Any

# Real payloads nest a dozen levels at most (Slack's rich text, Reddit's listings); 100 leaves ample room while
# keeping every later walk of the data (validation, logging, storing) far from Python's recursion limit.
MAX_DEPTH = 100

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # brackets inside strings are text
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def loads(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """`json.loads`, raising ValueError (as it does for bad JSON) for arrays and objects nested deeper than `max_depth`."""
    if isinstance(text, bytes):
        text = text.decode(json.detect_encoding(text), "surrogatepass")  # as json.loads decodes bytes
    if too_deep(text, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except RecursionError:  # not reached after the check above; kept so a deep input can never escape as a crash
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None


def too_deep(text: str, max_depth: int = MAX_DEPTH) -> bool:
    """True when the brackets of JSON `text` nest deeper than `max_depth` (before parsing, so the parser never recurses that far)."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # too few brackets to nest that deep: most payloads stop here
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    # Each round removes the innermost level, in C and without recursion; what is left after max_depth rounds is deeper.
    for _ in range(max_depth):
        if not brackets:
            return False
        shorter = brackets.replace("[]", "").replace("{}", "")
        if shorter == brackets:
            return False  # unbalanced: not JSON at all, and json.loads says so
        brackets = shorter
    return bool(brackets)
