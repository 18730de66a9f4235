"""cx-inbox's own item format, read by the `jsonl` and `webhook` connectors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from inbox.connector import Kind, RawItem, ReplyMode


class Author(BaseModel):
    """Who wrote it."""

    model_config = ConfigDict(extra="ignore")

    # Lengths are bounded once, in ingest, for every connector (see the limits beside RawItem).
    handle: str = Field(min_length=1)
    name: str | None = None


class ModePayload(BaseModel):
    """Another way to answer the item (e.g. `{"name": "private", "label": "Send privately", "closes_at": ...}`)."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(pattern=r"^[a-z0-9_]{1,32}$")
    label: str = Field(min_length=1, max_length=75)
    closes_at: AwareDatetime | None = None


class ItemPayload(BaseModel):
    """One item as JSON: `{"id", "text", "posted_at", "author": {"handle", "name"}, ...}`."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    text: str
    posted_at: AwareDatetime | datetime
    author: Author
    kind: Kind = Kind.MENTION
    thread_id: str | None = None
    url: str | None = None
    rating: int | None = Field(default=None, ge=1, le=5)
    from_brand: bool = False
    # The platform's reply window for this item, when the system that sends it knows one (see docs/sla.md).
    reply_window_closes_at: AwareDatetime | None = None
    extended_window_closes_at: AwareDatetime | None = None
    reply_modes: list[ModePayload] = Field(default_factory=list, max_length=8)

    @model_validator(mode="before")
    @classmethod
    def _flat_author(cls, data: Any) -> Any:
        # Accept {"author_handle": ..., "author_name": ...} as well as a nested author.
        if isinstance(data, dict) and "author" not in data and "author_handle" in data:
            data = {**data, "author": {"handle": data["author_handle"], "name": data.get("author_name")}}
        return data

    def to_raw(self) -> RawItem:
        """The connector-neutral item."""
        return RawItem(
            external_id=self.id,
            text=self.text,
            posted_at=self.posted_at,
            kind=self.kind,
            author_handle=self.author.handle,
            author_name=self.author.name,
            thread_id=self.thread_id,
            url=self.url,
            rating=self.rating,
            from_brand=self.from_brand,
            reply_window_closes_at=self.reply_window_closes_at,
            extended_window_closes_at=self.extended_window_closes_at,
            reply_modes=[ReplyMode(m.name, m.label, m.closes_at) for m in self.reply_modes],
        )


def parse_item(data: Any) -> RawItem:
    """Validate one JSON value as an item; raise ValueError naming what is wrong."""
    try:
        return ItemPayload.model_validate(data).to_raw()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'item'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise ValueError(problems) from None
