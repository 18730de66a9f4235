"""JSON:API documents (jsonapi.org), as App Store Connect speaks it: resources, listings paged by `links.next`."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

A = TypeVar("A", bound=BaseModel)
D = TypeVar("D")


class Resource(BaseModel, Generic[A]):
    """One resource: its id and the attributes we read."""

    id: str = Field(min_length=1)
    attributes: A


class Links(BaseModel):
    """A listing's links; `next` is absent on the last page."""

    next: str | None = None


class Listing(BaseModel):
    """A page of resources, kept raw so a misshapen one is skipped alone, and the link to the next page."""

    data: list[Any]
    links: Links = Field(default_factory=Links)


class Document(BaseModel, Generic[D]):
    """A document holding one resource (`Document[Resource[A] | None]` where the API may answer `data: null`)."""

    data: D


def creating(type_: str, attributes: dict[str, Any], **related: tuple[str, str]) -> dict[str, Any]:
    """The body that creates a resource of `type_`, related to others given as name=(type, id)."""
    relationships = {name: {"data": {"type": kind, "id": ident}} for name, (kind, ident) in related.items()}
    return {"data": {"type": type_, "attributes": attributes, "relationships": relationships}}
