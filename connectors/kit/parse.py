"""Vendor payloads parsed with pydantic: a page of the wrong shape is refused whole, a misshapen entry skipped and logged."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from inbox.connector import PermanentError

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


class Payload(BaseModel):
    """A vendor object: only the fields we read are declared, the vendor's others are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def page_of(model: type[M], data: Any, what: str) -> M:
    """The page's envelope; a page of the wrong shape is refused whole so the cursor stays where it was."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise PermanentError(f"{what} answered an unexpected shape: {first_problem(exc)}") from exc


def one_of(model: type[M], entry: Any) -> M | str:
    """The entry as `model`, or why it does not fit (for the caller's log line)."""
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        return first_problem(exc)


def fitting(model: type[M], entries: Iterable[Any]) -> Iterator[M]:
    """The entries that fit `model`, the others passed over without a word (for lookups, not for items)."""
    for entry in entries:
        if not isinstance(parsed := one_of(model, entry), str):
            yield parsed


def or_empty(model: type[M], entry: Any) -> M:
    """The entry as `model`, or the model with its defaults when it does not fit (for what only decorates an item)."""
    parsed = one_of(model, entry)
    return model() if isinstance(parsed, str) else parsed


def valid(model: type[M], entry: Any, name: str, what: str, ident: Any = None) -> M | None:
    """The entry as `model`, or None after a log line naming the connector, the entry and what is wrong with it."""
    try:
        return model.model_validate(entry)
    except ValidationError as exc:
        if ident is None and isinstance(entry, dict):
            ident = entry.get("id") or entry.get("reviewId")
        named = repr(str(ident)[:40]) if ident is not None else "without an id"
        log.warning("%s: skipped %s %s: %s", name, what, named, problem(exc))
        return None


def each_valid(model: type[M], entries: Iterable[Any], name: str, what: str = "review") -> Iterator[M]:
    """The entries that fit `model`; a misshapen one is logged with the connector's name and skipped."""
    for entry in entries:
        if (parsed := valid(model, entry, name, what)) is not None:
            yield parsed


def first_problem(exc: ValidationError) -> str:
    """The first thing wrong with a payload, by its path: `data.0.id: Field required (2 problem(s))`."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "body"
    return f"{where}: {error['msg']} ({exc.error_count()} problem(s))"


def problem(exc: ValidationError) -> str:
    """The first thing wrong with one entry, shortly: `missing author_id`, `created_at: timestamp ... has no zone`."""
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(p) for p in error["loc"]) or "entry"
    return (
        f"missing {where}" if error["type"] == "missing" else f"{where}: {error['msg'].removeprefix('Value error, ')}"
    )


def aware(at: datetime) -> datetime:
    """UTC, reading a vendor time without a zone as UTC."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _in_utc(at: datetime) -> datetime:
    """`aware`, as a validator: a time UTC cannot hold (0001-01-01 at +01:00) fails, so the entry is skipped."""
    try:
        return aware(at)
    except OverflowError:
        raise ValueError(f"time {at.isoformat()} is out of range") from None


def _zoned(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError(f"timestamp {at.isoformat()} has no zone")
    return at


def _strict_text(value: Any) -> Any:
    # pydantic's lax mode would read 42 as "42"; a vendor sending a number where text belongs sent the wrong shape.
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


# A vendor timestamp field: validated into aware UTC (no zone: UTC), or the entry is skipped with a log line.
VendorTime = Annotated[datetime, AfterValidator(_in_utc)]
# Text as the vendor sent it: a string, never a number or a list coerced into one.
Text = Annotated[str, BeforeValidator(_strict_text)]


def _text_or_none(value: Any) -> Any:
    # An optional field of another type is as good as absent: it only ever decorates an item.
    return value if isinstance(value, str) and value else None


def _id_text(value: Any) -> Any:
    # Ids travel as strings, some vendors (and some of their fields) send numbers.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _id_or_none(value: Any) -> Any:
    return _text_or_none(_id_text(value))


def _digits(value: str) -> str:
    if not value.isdigit():
        raise ValueError(f"id {value[:40]!r} is not numeric")
    return value


def _number(value: Any) -> Any:
    # JSON numbers only: pydantic's lax mode would read "12" or true as a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {type(value).__name__}")
    return value


def _epoch(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(_number(value), UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"time {value!r} is out of range") from exc


def _epoch_text(value: Any) -> datetime:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected epoch seconds, got {type(value).__name__}")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ValueError(f"time {value!r} is out of range") from exc


def _list_or_empty(value: Any) -> Any:
    return value if isinstance(value, list) else []


def _object_or_none(value: Any) -> Any:
    return value if isinstance(value, dict) else None


# A vendor time sent as text: validated into aware UTC (no zone: UTC), or the entry is skipped.
Timestamp = Annotated[datetime, BeforeValidator(_strict_text), AfterValidator(_in_utc)]
# The same for vendors that always send a zone (X): a time without one is the wrong shape.
ZonedTimestamp = Annotated[datetime, BeforeValidator(_strict_text), AfterValidator(_zoned), AfterValidator(_in_utc)]
# Required text that must not be empty (ids, handles).
Name = Annotated[str, BeforeValidator(_strict_text), Field(min_length=1)]
# Optional text: anything else (a number, a list, "") reads as absent.
OptionalText = Annotated[str | None, BeforeValidator(_text_or_none)]
# An id that may come as a number.
# (Before validators run last-declared first: the number becomes text before the text check.)
Id = Annotated[str, BeforeValidator(_strict_text), BeforeValidator(_id_text), Field(min_length=1)]
# An optional id, text or number on the wire; anything else reads as absent.
OptionalId = Annotated[str | None, BeforeValidator(_id_or_none)]
# A numeric id (X's snowflakes, a configured account id), sent as text or as a number.
Digits = Annotated[str, BeforeValidator(_strict_text), BeforeValidator(_id_text), AfterValidator(_digits)]
# A JSON number (Reddit's created_utc), never text or a boolean.
Number = Annotated[float, BeforeValidator(_number)]
# A time as epoch seconds (Reddit's created_utc), in UTC.
EpochTime = Annotated[datetime, BeforeValidator(_epoch)]
# A time as epoch seconds sent as digits or as a number (WhatsApp's "1504902988"), in UTC.
EpochText = Annotated[datetime, BeforeValidator(_epoch_text)]
# A list that only decorates (expansions, references): anything else reads as empty.
Entries = Annotated[list[Any], BeforeValidator(_list_or_empty)]
# For an optional object that only decorates (paging metadata): anything but an object reads as absent.
IfObject = BeforeValidator(_object_or_none)
