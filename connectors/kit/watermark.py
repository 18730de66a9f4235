"""A watermark over listings read newest first: the newest time read, and the ids read at exactly that time.

A listing is read back until it reaches the watermark (`ReadBack`); what is newer is mapped oldest first in chunks,
and the watermark advances with each chunk (`advance`), so every page's cursor is safe to resume from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from inbox.connectors.kit.parse import Payload, aware, valid

X = TypeVar("X")


class Mark(Payload):
    """A watermark: the newest time read, and the ids read at exactly that time."""

    at: datetime
    ids: list[str] = Field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Seen(Generic[X]):
    """An entry of a listing with its time and id, before it is mapped; `about` is what the listing it came from was."""

    at: datetime
    id: str
    raw: Any
    about: X | None = None


def is_new(at: datetime, ident: str, mark: Mark | None, horizon: datetime) -> bool:
    """Whether an entry is past the mark (without one: not older than the horizon, the first poll's reach)."""
    if mark is None:
        return at >= horizon
    return at > mark.at or (at == mark.at and ident not in mark.ids)


class ReadBack(Generic[X]):
    """Reads a newest-first listing back to the watermark: the entries past it, and whether a page reached it."""

    def __init__(self, mark: Mark | None, horizon: datetime, name: str) -> None:
        self.mark, self.horizon, self.name = mark, horizon, name
        self.floor = mark.at if mark else horizon
        self._found: dict[str, Seen[X]] = {}  # by id: an entry served on two pages is read once

    def read(
        self,
        entries: Iterable[Any],
        model: type[BaseModel],
        what: str,
        keys: tuple[str, str],
        *,
        about: X | None = None,
        skip: Callable[[Any], bool] | None = None,
    ) -> bool:
        """Take one page's entries, timed and named by `keys` (time, id); True once it reached back past the mark.

        An entry without a time is parsed as `model` to log why it is skipped; `skip` passes over others (our own).
        """
        reached = False
        for raw in entries:
            ident = id_of(raw, keys[1])
            if (at := time_of(raw, keys[0])) is None:
                valid(model, raw, self.name, what, ident or None)  # logs why
            elif at < self.floor:
                reached = True  # what is older was read before: later pages are older still
            elif not (skip and skip(raw)) and is_new(at, ident, self.mark, self.horizon):
                self._found[ident] = Seen(at, ident, raw, about)
        return reached

    def new(self) -> list[Seen[X]]:
        """The entries past the mark, oldest first."""
        return sorted(self._found.values(), key=lambda e: e.at)


def advance(mark: Mark | None, chunk: Iterable[Seen[Any]]) -> Mark | None:
    """The watermark after a chunk read oldest first."""
    for entry in chunk:
        if mark is None or entry.at > mark.at:
            mark = Mark(at=entry.at, ids=[entry.id])
        elif entry.at == mark.at and entry.id not in mark.ids:
            mark = Mark(at=mark.at, ids=[*mark.ids, entry.id])
    return mark


def chunks(entries: list[X], size: int) -> Iterator[list[X]]:
    """The entries in runs of `size`, one page each."""
    for start in range(0, len(entries), size):
        yield entries[start : start + size]


def time_of(raw: Any, key: str) -> datetime | None:
    """An entry's time before it is parsed whole (to place it against the mark), or None when it has none."""
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return aware(parsed)  # without a zone: UTC, as the kit reads vendor times


def id_of(raw: Any, key: str) -> str:
    """An entry's id before it is parsed whole, or "" when it has none."""
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else ""
