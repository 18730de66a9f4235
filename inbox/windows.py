"""Platform reply windows: when a platform stops taking a reply, what the agent is shown and when a send is refused.

Pure functions of an item's stored window and the time, shared by ingest, the queue, Slack and the reply action.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from inbox.connector import STANDARD_MODE, Kind, RawItem, ReplyMode, display_name, reply_window
from inbox.sla import duration_text

# A mode's name becomes part of a Slack action id (`inbox_send_<name>`) and a store column (32 characters).
_MODE_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_MAX_LABEL = 75  # Slack's most for a button's text
_MAX_AFTER = 255  # Item.after_window


@dataclass(frozen=True, slots=True)
class ItemWindow:
    """An item's reply window as stored: the ordinary one, its extension, the fallback after it, the other modes."""

    closes_at: datetime | None = None
    extended_until: datetime | None = None
    after_window: str | None = None
    modes: tuple[ReplyMode, ...] = ()
    removed_at: datetime | None = None  # the platform reported the item removed: nothing is left to answer

    def removal(self, channel: str) -> str | None:
        """Why no reply of any mode goes to a removed item, or None."""
        if self.removed_at is None:
            return None
        return (
            f"the customer removed this on {_name(channel)} ({self.removed_at:%d %b %H:%M} UTC), so it no longer "
            "takes a reply; answer them another way if they still need one"
        )

    @property
    def door(self) -> datetime | None:
        """The last moment any ordinary reply is taken (with the extension when there is one); None: no window."""
        return self.extended_until or self.closes_at

    def closed(self, now: datetime) -> bool:
        """True once every window of the ordinary reply has closed."""
        door = self.door
        return door is not None and now >= door

    def refusal(self, channel: str, now: datetime) -> str | None:
        """Why the platform would refuse the ordinary reply now (removed; closed, and no fallback), or None."""
        if self.removed_at is not None:
            return self.removal(channel)
        if not self.closed(now) or self.after_window:
            return None
        return (
            f"{_name(channel)}'s reply window closed {_ago(self.door, now)} ago, so it no longer takes a reply here; "
            "wait for the customer to write again, or answer them another way"
        )

    def note(self, channel: str, now: datetime, due_at: datetime | None) -> str | None:
        """The line an agent sees (plain text, to escape) when the window matters more than the SLA deadline, or None.

        Shown once the window has closed, and while it closes before the SLA deadline (or after a deadline
        already passed: the window is then the next door to close).
        """
        if self.removed_at is not None:
            return f"Removed by the customer on {_name(channel)}: a reply can no longer be sent"
        door = self.door
        if door is None:
            return None
        if now >= door:
            if self.after_window:
                return f"{_name(channel)}'s reply window closed: {self.after_window}"
            return f"{_name(channel)}'s reply window closed {_ago(door, now)} ago: a reply can no longer be sent"
        if due_at is not None and door >= due_at and due_at > now:
            return None
        line = f"{_name(channel)}'s reply window closes in {_ago(now, door)}"
        if self.closes_at is not None and self.extended_until is not None:
            if now >= self.closes_at:
                line = f"{_name(channel)}'s standard reply window closed; the extended one closes in {_ago(now, door)}"
            else:
                line += f" (the standard one in {_ago(now, self.closes_at)})"
        if self.after_window:
            line += f"; after that: {self.after_window}"
        return line

    def mode(self, name: str) -> ReplyMode | None:
        """The item's reply mode called `name`, or None."""
        return next((m for m in self.modes if m.name == name), None)

    def open_modes(self, now: datetime) -> list[ReplyMode]:
        """The other reply modes still open now."""
        return [m for m in self.modes if m.closes_at is None or now < m.closes_at]


def of_row(row: Any) -> ItemWindow:
    """The window of a stored item (any row with Item's window columns)."""
    return ItemWindow(
        closes_at=row.reply_window_closes_at,
        extended_until=row.extended_window_closes_at,
        after_window=row.after_window,
        modes=tuple(load_modes(row.reply_modes)),
        removed_at=getattr(row, "removed_at", None),
    )


def for_raw(raw: RawItem, channel: str) -> tuple[datetime | None, datetime | None]:
    """(ordinary, extended) closing times of a new item: the connector's own, else the channel's window from posting.

    A connector that gives `reply_window_closes_at` gives the whole window: no extension unless it gives one too
    (a Messenger Page not approved for the human-agent tag has none).
    """
    closes = _utc(raw.reply_window_closes_at)
    if closes is not None:
        extended = _utc(raw.extended_window_closes_at)
    else:
        window = reply_window(channel, Kind(raw.kind))
        if window is None:
            return None, None
        closes = raw.posted_at + window.standard
        extended = raw.posted_at + window.extended if window.extended is not None else None
    if closes is not None and extended is not None and extended <= closes:
        extended = None  # no longer than the ordinary one: nothing to extend
    return closes, extended


def door(closes_at: datetime | None, extended_until: datetime | None) -> datetime | None:
    """The thread's window from its latest item's: the last moment any ordinary reply is taken."""
    return extended_until or closes_at


def dump_modes(modes: Iterable[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The reply modes a connector declared, as stored; and a problem line per mode left out."""
    kept: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: set[str] = set()
    given: Iterable[Any] = modes if isinstance(modes, (list, tuple)) else [modes]
    for mode in given:
        problem = _mode_problem(mode, seen)
        if problem or not isinstance(mode, ReplyMode):
            problems.append(problem or f"reply mode {str(mode)[:40]!r} is not a ReplyMode")
            continue
        seen.add(mode.name)
        closes = _utc(mode.closes_at)
        kept.append(
            {
                "name": mode.name,
                "label": mode.label.strip()[:_MAX_LABEL],
                "closes_at": closes.isoformat() if closes else None,
            }
        )
    return kept, problems


def load_modes(stored: Sequence[Any] | None) -> list[ReplyMode]:
    """The reply modes of a stored item."""
    modes = []
    for entry in stored or ():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str):
            closes = entry.get("closes_at")
            at = datetime.fromisoformat(closes) if isinstance(closes, str) else None
            modes.append(ReplyMode(entry["name"], str(entry.get("label") or entry["name"]), _utc(at)))
    return modes


def after_window_text(text: str | None) -> str | None:
    """A connector's after-window hint as stored: one line, at most 255 characters."""
    if not text or not isinstance(text, str):
        return None
    line = " ".join(text.split())
    return line if len(line) <= _MAX_AFTER else line[: _MAX_AFTER - 1] + "…"


def _mode_problem(mode: Any, seen: set[str]) -> str | None:
    if not isinstance(mode, ReplyMode):
        return f"reply mode {str(mode)[:40]!r} is not a ReplyMode"
    if not isinstance(mode.name, str) or not _MODE_NAME.match(mode.name) or mode.name == STANDARD_MODE:
        return f"reply mode name {str(mode.name)[:40]!r} is not 1-32 of a-z, 0-9, _ (nor {STANDARD_MODE!r})"
    if mode.name in seen:
        return f"reply mode {mode.name!r} given twice"
    if not isinstance(mode.label, str) or not mode.label.strip():
        return f"reply mode {mode.name!r} has no label"
    closes: object = mode.closes_at  # a connector may hand anything: checked as a plain object
    if closes is not None and not isinstance(closes, datetime):
        return f"reply mode {mode.name!r}: closes_at is not a time"
    return None


def _utc(value: datetime | None) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return (value.replace(tzinfo=UTC) if value.utcoffset() is None else value).astimezone(UTC)


def _name(channel: str) -> str:
    return display_name(channel) or channel


def _ago(earlier: datetime | None, later: datetime) -> str:
    if earlier is None:
        return "0 min"
    return duration_text(max(later - earlier, timedelta()).total_seconds() / 60)
