"""`google_reviews`: one Google Business Profile location's reviews (API v4), answered with the owner's reply."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, Field

from inbox.connector import Clock, PermanentError, RawItem, ReplyTarget, SentReply, wall_clock
from inbox.connectors.kit.google import GoogleConnector, GoogleSettings
from inbox.connectors.kit.parse import VendorTime, aware, page_of
from inbox.connectors.kit.reviews import NewestFirst, Request, review_item, with_token

PAGE_SIZE = 50  # the API's maximum
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


class GoogleReviewsConnector(GoogleConnector[GoogleReviewsSettings, _Review]):
    """Polls a location's reviews newest-updated first; an edited review is a follow-up in the review's thread."""

    type = "google_reviews"
    api_url = "https://mybusiness.googleapis.com"
    scope = "https://www.googleapis.com/auth/business.manage"
    size_param = "pageSize"

    def __init__(self, settings: GoogleReviewsSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        account = settings.account_id.removeprefix("accounts/")
        self.location = settings.location_id.removeprefix("locations/")
        self.reviews_path = f"/v4/accounts/{quote(account, safe='')}/locations/{quote(self.location, safe='')}/reviews"

    def first_request(self) -> Request:
        """Newest change first, so an edited review comes again."""
        return self.reviews_path, {"pageSize": PAGE_SIZE, "orderBy": "updateTime desc"}

    def page(self, data: Any, request: Request) -> tuple[list[Any], Request | None]:
        """`reviews`, and `nextPageToken` as the next `pageToken`."""
        page = page_of(_ReviewsPage, data, f"{self.name}: reviews")
        return page.reviews, with_token(request, "pageToken", page.nextPageToken)

    def _item(self, review: _Review, walk: NewestFirst) -> RawItem | None:
        updated = aware(review.updateTime)
        if not walk.is_new(updated, review.reviewId):
            return None
        reply, existing, answered_at = review.reviewReply, None, None
        if walk.known(aware(review.createTime), review.reviewId):
            if reply is not None and reply.updateTime is not None and aware(reply.updateTime) >= updated:
                # The newest change is the owner's reply (ours or a colleague's), not the customer's words.
                return None
            # The customer edited a review we already have: a follow-up in its thread, not a new review.
            version, posted_at = f"{review.reviewId}@{_stamp(updated)}", updated
        else:
            version, posted_at = None, aware(review.createTime)
            if reply is not None:
                # Still the customer's review, kept with a note (a review has a single owner reply).
                existing = reply.comment
                replied = aware(reply.updateTime) if reply.updateTime else self.clock()  # undated: by now at the latest
                if replied >= updated:  # else the customer changed the review after the reply: it waits again
                    answered_at = replied
        return review_item(
            review.reviewId,
            review.comment,
            posted_at,
            STARS[review.starRating],
            review.reviewer.displayName,
            anonymous=review.reviewer.isAnonymous,
            version=version,
            existing_reply=existing,
            answered_at=answered_at,
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Set the owner's reply on the review (PUT replaces any earlier reply)."""
        size, limit = (
            len(text.encode("utf-8")),
            self.max_reply_chars,
        )  # Google counts the reply in bytes, not characters
        if limit is not None and size > limit:
            raise PermanentError(f"reply is {size} bytes in UTF-8; Google allows {limit}")
        await self.call("PUT", f"{self.review_path(target)}/reply", json_body={"comment": text})
        return SentReply(None)

    def owner_reply(self, review: _Review) -> str | None:
        """The review's owner reply."""
        return None if review.reviewReply is None else review.reviewReply.comment

    async def check(self) -> str:
        """List one review: proves the token, the scope and access to the location."""
        page = await self.list_one(_ReviewsPage)
        average = f", average {page.averageRating:.1f}" if page.averageRating is not None else ""
        return f"Google location {self.location}: {page.totalReviewCount or 0} review(s){average}"


def _stamp(at: datetime) -> str:
    # One spelling per instant: Google writes the same time with or without fractions.
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
