"""A fake Google Business Profile API v4 (reviews of one location), per the v4 REST reference.

Shapes follow inbox/fakes/data/google_reviews/ (SHAPE-ONLY, built from
https://developers.google.com/my-business/reference/rest/v4/accounts.locations.reviews): ListReviewsResponse
{reviews[], averageRating, totalReviewCount, nextPageToken}; query pageSize (max 50), pageToken, orderBy;
PUT .../reviews/{id}/reply with ReviewReply{comment} answers ReviewReply{comment, updateTime}.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.google import GoogleFake
from inbox.fakes.reviews import FakeReview

ACCOUNT_ID = "1234567890"
LOCATION_ID = "9876543210"
BASE = f"/v4/accounts/{ACCOUNT_ID}/locations/{LOCATION_ID}/reviews"
STAR_WORDS = {1: "ONE", 2: "TWO", 3: "THREE", 4: "FOUR", 5: "FIVE"}
MAX_PAGE_SIZE = 50


def rfc3339(at: datetime) -> str:
    """Google's timestamp, with nanoseconds as in the reference's "2014-10-02T15:01:23.045123456Z"."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


class GoogleReviewsFake(GoogleFake):
    """mybusiness.googleapis.com for one location's reviews, newest update first."""

    page_size: ClassVar[int] = MAX_PAGE_SIZE
    fetch_paths: ClassVar[tuple[str, ...]] = (BASE,)
    check_paths: ClassVar[tuple[str, ...]] = (BASE,)
    sort_by: ClassVar[str] = "updated"
    scope = "https://www.googleapis.com/auth/business.manage"

    def __init__(self) -> None:
        super().__init__()
        # Whether the owner's reply moves the review's own updateTime (the reference does not say).
        self.reply_bumps_update_time = False
        # Raw ListReviewsResponse bodies served, in order, before the stored reviews (recorded fixtures).
        self.verbatim: list[Any] = []

    def routes(self, app: web.Application) -> None:
        """The reviews.list, reviews.get and reviews.updateReply methods, and the token endpoint."""
        app.router.add_get(BASE, self.list_reviews)
        app.router.add_get(BASE + "/{review_id}", self.get_review)
        app.router.add_put(BASE + "/{review_id}/reply", self.update_reply)
        self.add_token_route(app)

    def external_id(self, review: FakeReview) -> str:
        """A review edited after it was first listed is `id@updateTime` (microseconds, as the connector spells it)."""
        if review.updated == review.created:
            return review.id
        return f"{review.id}@{review.updated.strftime('%Y-%m-%dT%H:%M:%S.%fZ')}"

    def render(self, review: FakeReview) -> dict[str, Any]:
        """A Review resource."""
        body: dict[str, Any] = {
            "name": f"accounts/{ACCOUNT_ID}/locations/{LOCATION_ID}/reviews/{review.id}",
            "reviewId": review.id,
            "reviewer": (
                {"displayName": "A Google user", "isAnonymous": True}
                if review.anonymous
                else {
                    "profilePhotoUrl": f"https://lh3.googleusercontent.com/a-/{review.id}",
                    "displayName": review.author,
                    "isAnonymous": False,
                }
            ),
            "starRating": STAR_WORDS[review.rating],
            "createTime": rfc3339(review.created),
            "updateTime": rfc3339(review.updated),
        }
        if review.text:  # absent for a rating-only review
            body["comment"] = review.text
        if review.reply is not None and review.reply_at is not None:
            body["reviewReply"] = {"comment": review.reply, "updateTime": rfc3339(review.reply_at)}
        if review.broken:
            del body["starRating"]
        return body

    async def list_reviews(self, request: web.Request) -> web.Response:
        """reviews.list."""
        if not self.authorized(request):
            return self.error(401, "Request had invalid authentication credentials.")
        if self.verbatim:
            return web.json_response(self.verbatim.pop(0))
        try:
            size = int(request.query.get("pageSize", "50"))
            offset = (
                int(base64.urlsafe_b64decode(request.query["pageToken"]).decode())
                if "pageToken" in request.query
                else 0
            )
        except ValueError:
            return self.error(400, "Request contains an invalid argument.")
        if not 1 <= size <= MAX_PAGE_SIZE or request.query.get("orderBy", "updateTime desc") != "updateTime desc":
            return self.error(400, "Request contains an invalid argument.")
        reviews = self.listing()
        body: dict[str, Any] = {"totalReviewCount": len(reviews)}
        if reviews:
            body["averageRating"] = round(sum(r.rating for r in reviews) / len(reviews), 1)
            body["reviews"] = [self.render(r) for r in self.window(reviews, offset, size)]
        if offset + size < len(reviews):
            body["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return web.json_response(body)

    async def update_reply(self, request: web.Request) -> web.Response:
        """reviews.updateReply: creates or replaces the owner's reply."""
        review = self.review_or_error(request)
        if isinstance(review, web.Response):
            return review
        body = await request.json()
        comment = body.get("comment") if isinstance(body, dict) else None
        if not isinstance(comment, str) or not comment or len(comment.encode()) > 4096:
            return self.error(400, "Request contains an invalid argument.")
        self.record_reply(review, comment)
        if self.reply_bumps_update_time:
            review.updated = self.now
        return web.json_response({"comment": comment, "updateTime": rfc3339(self.now)})
