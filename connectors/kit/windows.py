"""Reply windows as the channel registry declares them, and what goes out once one has closed (a template chosen by
the customer's language)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from inbox.connector import ReplyTarget, reply_window


def window_closes_at(target: ReplyTarget, channel: str, posted_at: object) -> datetime | None:
    """When the ordinary reply's window closes: the core's time, else the registry's window for the item's kind counted
    from `posted_at` (the epoch seconds an item keeps in its `reply_to`); None when unknown."""
    if target.window_closes_at is not None:  # the core's: moved by each later message of the customer
        return target.window_closes_at
    window = reply_window(channel, target.kind)
    if window is None or isinstance(posted_at, bool) or not isinstance(posted_at, int | float):
        return None
    return datetime.fromtimestamp(posted_at, UTC) + window.standard


def by_language(choices: Mapping[str, str], language: str | None) -> tuple[str, str] | None:
    """(choice, its language key) for the customer's language: its own key ("fr"), else a regional one of it ("en_US"
    for "en"); None without a language or a choice in it."""
    if not language:
        return None
    if language in choices:
        return choices[language], language
    base = language.split("_")[0].split("-")[0].lower()
    for code, choice in sorted(choices.items()):
        if code.split("_")[0].lower() == base:
            return choice, code
    return None
