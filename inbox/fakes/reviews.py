"""What the four review-site fakes share: reviews kept in memory, listed newest first, paged, edited and answered."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.vendor import SentReply, VendorFake

# The brand's own name on review sites: set as `own_handles` in the tests' configs.
OWN_NAME = "Acme Support"


@dataclass(slots=True)
class FakeReview:
    """One review as a vendor stores it."""

    id: str
    author: str
    text: str
    rating: int
    created: datetime
    updated: datetime
    title: str = ""
    anonymous: bool = False
    language: str = "en"
    reply: str | None = None
    reply_at: datetime | None = None
    broken: bool = False  # rendered with a required field missing
    extra: dict[str, Any] = field(default_factory=dict)


class ReviewFake(VendorFake, abc.ABC):
    """A vendor fake whose data is reviews; subclasses render them and page them their vendor's way."""

    # Which time the vendor sorts its listing by, newest first: "updated" or "created".
    sort_by: ClassVar[str] = "created"

    def __init__(self) -> None:
        super().__init__()
        self.reviews: dict[str, FakeReview] = {}
        self._serial = 0

    @abc.abstractmethod
    def render(self, review: FakeReview) -> dict[str, Any]:
        """The review in the vendor's wire format."""

    def external_id(self, review: FakeReview) -> str:
        """The id the connector gives the review's current version."""
        return review.id

    def error(self, status: int, message: str, code: str = "") -> web.Response:
        """An error answer in the vendor's format (override per vendor)."""
        return web.json_response({"error": message, "code": code}, status=status)

    def listing(self) -> list[FakeReview]:
        """All reviews, newest first by the vendor's sort key."""
        return sorted(self.reviews.values(), key=lambda r: (getattr(r, self.sort_by), r.id), reverse=True)

    def window(self, reviews: list[FakeReview], offset: int, size: int) -> list[FakeReview]:
        """One page from `offset`; with `duplicating`, it starts with the previous page's last review again."""
        page = reviews[offset : offset + size]
        if self.duplicating and offset > 0:
            page = [reviews[offset - 1], *page]
        return page

    def find(self, external_id: str) -> FakeReview:
        """The review an external id (or a version's external id, `id@time`) names."""
        return self.reviews[external_id.split("@")[0]]

    def add_review(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, rating: int = 2, **fields: Any
    ) -> FakeReview:
        """Store a new review and return it."""
        self._serial += 1
        at = self.now - timedelta(minutes=minutes_ago)
        review = FakeReview(
            id=f"rev{self._serial:05d}", author=author, text=text, rating=rating, created=at, updated=at, **fields
        )
        self.reviews[review.id] = review
        return review

    def edit(self, external_id: str, text: str, *, minutes_ago: float = 0.0) -> FakeReview:
        """The customer rewrites their review: same id, new text and update time."""
        review = self.find(external_id)
        review.text = text
        review.updated = self.now - timedelta(minutes=minutes_ago)
        return review

    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A new review, or with `reply_to` the customer's edit of that review."""
        if reply_to is not None:
            return self.external_id(self.edit(reply_to, text, minutes_ago=minutes_ago))
        return self.external_id(self.add_review(text, author=author, minutes_ago=minutes_ago))

    def add_brand_post(self, text: str) -> list[str]:
        """Review sites have no brand posts or reposts; a review under the brand's own name stands in for them."""
        return [self.external_id(self.add_review(text, author=OWN_NAME, rating=5))]

    def add_existing_reply(self, target: str, text: str) -> None:
        """The brand's reply already on the review."""
        review = self.find(target)
        review.reply, review.reply_at = text, self.now

    def add_broken_item(self) -> None:
        """A review missing a field every review has."""
        self.add_review("broken", author="broken", minutes_ago=2, broken=True)

    def record_reply(self, review: FakeReview, text: str, **details: Any) -> None:
        """Answer a review, as the vendor does on a reply request."""
        self.replies.append(SentReply(self.external_id(review), text, details))
        review.reply, review.reply_at = text, self.now

    def bearer(self, request: web.Request) -> str | None:
        """The request's bearer token."""
        header = request.headers.get("Authorization", "")
        return header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
