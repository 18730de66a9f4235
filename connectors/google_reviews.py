"""`google_reviews`: one Google Business Profile location's reviews (API v4), answered with the owner's reply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from inbox.connector import Connector, Kind, Page, PermanentError, RawItem, ReplyTarget, SentReply
from inbox.http import PageGuard, VendorClient
from inbox.connectors._google import GoogleSettings, google_token
from inbox.connectors._reviews import NewestFirst, ReviewCursor, VendorTime, aware, each_valid, page_of, reviewer, same_text

log = logging.getLogger(__name__)

API_URL = "https://mybusiness.googleapis.com"
SCOPE = "https://www.googleapis.com/auth/business.manage"
PAGE_SIZE = 50  # the API's maximum
MAX_REPLY_BYTES = 4096  # Google counts the reply in bytes, not characters
STARS: dict[str, int | None] = {"ONE": 1, "TWO": 2, "THREE": 3, "FOUR": 4, "FIVE": 5, "STAR_RATING_UNSPECIFIED": None}


class GoogleReviewsSettings(GoogleSettings):
    """A verified location (`account_id`, `location_id`) and OAuth credentials with the business.manage scope."""

    type: str = "google_reviews"
    account_id: str = Field(min_length=1)
    location_id: str = Field(min_length=1)


class _Reviewer(BaseModel):
    displayName: str | None = None
    isAnonymous: bool = False


class _ReviewReply(BaseModel):
    comment: str = ""
    updateTime: VendorTime | None = None


class _Review(BaseModel):
    reviewId: str = Field(min_length=1)
    reviewer: _Reviewer = Field(default_factory=_Reviewer)
    starRating: Literal["ONE", "TWO", "THREE", "FOUR", "FIVE", "STAR_RATING_UNSPECIFIED"]
    comment: str = ""  # absent for a rating-only review
    createTime: VendorTime
    updateTime: VendorTime
    reviewReply: _ReviewReply | None = None


class _ReviewsPage(BaseModel):
    reviews: list[Any] = Field(default_factory=list)
    nextPageToken: str | None = None
    averageRating: float | None = None
    totalReviewCount: int | None = None


class GoogleReviewsConnector(Connector[GoogleReviewsSettings, ReviewCursor]):
    """Polls a location's reviews newest-updated first; an edited review is a follow-up in the review's thread."""

    type = "google_reviews"
    settings_model = GoogleReviewsSettings
    cursor_model = ReviewCursor
    channel = "google_reviews"
    max_reply_chars = MAX_REPLY_BYTES

    def __init__(self, settings: GoogleReviewsSettings) -> None:
        super().__init__(settings)
        self.client = VendorClient(self.name, settings.api_url or API_URL)
        self.token = google_token(settings, self.client, SCOPE)
        account = settings.account_id.removeprefix("accounts/")
        self.location = settings.location_id.removeprefix("locations/")
        self.reviews_path = f"/v4/accounts/{quote(account, safe='')}/locations/{quote(self.location, safe='')}/reviews"

    async def fetch(self, cursor: ReviewCursor | None) -> AsyncIterator[Page[ReviewCursor]]:
        """Pages of reviews updated since the cursor; the cursor comes last, once every page is stored."""
        walk = NewestFirst(cursor, self.settings.first_poll_hours)
        guard = PageGuard(f"{self.name}: reviews")
        params: dict[str, Any] = {"pageSize": PAGE_SIZE, "orderBy": "updateTime desc"}
        while True:
            response = await self.token.request(self.client, "GET", self.reviews_path, params=params)
            page = page_of(_ReviewsPage, response.data, f"{self.name}: reviews")
            items = [self._item(r, walk) for r in each_valid(_Review, page.reviews, self.name)]
            yield Page([i for i in items if i is not None])
            if walk.done or not page.nextPageToken:
                break
            params["pageToken"] = guard.next(page.nextPageToken)
        yield Page([], walk.cursor())

    def _item(self, review: _Review, walk: NewestFirst) -> RawItem | None:
        updated = aware(review.updateTime)
        if not walk.is_new(updated, review.reviewId):
            return None
        reply = review.reviewReply
        reply_to: dict[str, Any] = {"review_id": review.reviewId}
        answered_at = None
        if walk.known(aware(review.createTime), review.reviewId):
            if reply is not None and reply.updateTime is not None and aware(reply.updateTime) >= updated:
                # The newest change is the owner's reply (ours or a colleague's), not the customer's words.
                return None
            # The customer edited a review we already have: a follow-up in its thread, not a new review.
            external_id, posted_at = f"{review.reviewId}@{_stamp(updated)}", updated
        else:
            external_id, posted_at = review.reviewId, aware(review.createTime)
            if reply is not None:
                # Answered outside cx-inbox before we saw it: still the customer's review, kept with a note
                # because our reply would replace that one (a review has a single owner reply).
                reply_to["existing_reply"] = reply.comment
                replied = aware(reply.updateTime) if reply.updateTime else datetime.now(UTC)  # undated: by now at the latest
                if replied >= updated:  # else the customer changed the review after the reply: it waits again
                    answered_at = replied
        handle, name = reviewer(review.reviewer.displayName, review.reviewId, review.reviewer.isAnonymous)
        return RawItem(
            external_id=external_id,
            text=review.comment,
            posted_at=posted_at,
            kind=Kind.REVIEW,
            author_handle=handle,
            author_name=name,
            thread_id=review.reviewId,
            rating=STARS[review.starRating],
            reply_to=reply_to,
            answered_at=answered_at,
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Set the owner's reply on the review (PUT replaces any earlier reply)."""
        size = len(text.encode("utf-8"))
        if size > MAX_REPLY_BYTES:
            raise PermanentError(f"reply is {size} bytes in UTF-8; Google allows {MAX_REPLY_BYTES}")
        await self.token.request(self.client, "PUT", f"{self._review_path(target)}/reply", json_body={"comment": text})
        return SentReply(None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """The review's owner reply, when it already says `text`."""
        response = await self.token.request(self.client, "GET", self._review_path(target))
        review = page_of(_Review, response.data, f"{self.name}: review")
        if review.reviewReply is not None and same_text(review.reviewReply.comment, text):
            return SentReply(None)
        return None

    async def check(self) -> str:
        """List one review: proves the token, the scope and access to the location."""
        response = await self.token.request(self.client, "GET", self.reviews_path, params={"pageSize": 1})
        page = page_of(_ReviewsPage, response.data, f"{self.name}: reviews")
        average = f", average {page.averageRating:.1f}" if page.averageRating is not None else ""
        return f"Google location {self.location}: {page.totalReviewCount or 0} review(s){average}"

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    def _review_path(self, target: ReplyTarget) -> str:
        review_id = str(target.reply_to.get("review_id") or target.thread_id)
        return f"{self.reviews_path}/{quote(review_id, safe='')}"


def _stamp(at: datetime) -> str:
    # One spelling per instant: Google writes the same time with or without fractions.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
