"""A fake Google Play Developer API (androidpublisher v3 reviews.list, reviews.get, reviews.reply).

Shapes follow inbox/fakes/data/google_play/: GET_reviews.documented_excerpt.json (review objects verbatim from
https://developers.google.com/android-publisher/reply-to-reviews; tokenPagination and developerComment per the REST
reference) and POST_reviews_id_reply.SHAPE.json. As documented, the list holds only reviews written or changed in
the last 7 days and only reviews with text; lastModified.seconds is a string; replies over 350 characters are refused.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.google import GoogleFake
from inbox.fakes.reviews import FakeReview

PACKAGE = "com.acme.shop"
BASE = f"/androidpublisher/v3/applications/{PACKAGE}/reviews"
MAX_RESULTS = 100
WINDOW = timedelta(days=7)


def timestamp(at: datetime) -> dict[str, Any]:
    """Play's Timestamp: seconds as a string (int64 in JSON), nanos as a number."""
    return {"seconds": str(int(at.timestamp())), "nanos": at.microsecond * 1000}


class GooglePlayFake(GoogleFake):
    """androidpublisher.googleapis.com reviews of one app, newest change first."""

    not_found = "Review not found."

    page_size: ClassVar[int] = MAX_RESULTS
    fetch_paths: ClassVar[tuple[str, ...]] = (BASE,)
    check_paths: ClassVar[tuple[str, ...]] = (BASE,)
    sort_by: ClassVar[str] = "updated"
    scope = "https://www.googleapis.com/auth/androidpublisher"

    def __init__(self) -> None:
        super().__init__()
        self.verbatim: list[Any] = []

    def routes(self, app: web.Application) -> None:
        """reviews.list, reviews.get, reviews.reply and the token endpoint."""
        app.router.add_get(BASE, self.list_reviews)
        app.router.add_get(BASE + "/{review_id:[^/:]+}", self.get_review)
        app.router.add_post(BASE + "/{review_id:[^/:]+}:reply", self.reply)
        self.add_token_route(app)

    def external_id(self, review: FakeReview) -> str:
        """Every version of a Play review is `reviewId@lastModified.seconds`."""
        return f"{review.id}@{int(review.updated.timestamp())}"

    def render(self, review: FakeReview) -> dict[str, Any]:
        """A Review resource."""
        user: dict[str, Any] = {
            "text": review.text,
            "lastModified": timestamp(review.updated),
            "starRating": review.rating,
            "reviewerLanguage": review.language,
            "device": "a52q",
            "androidOsVersion": 34,
            "appVersionCode": 210,
            "appVersionName": "2.1.0",
            "thumbsUpCount": 0,
            "thumbsDownCount": 0,
        }
        comments: list[dict[str, Any]] = [{"userComment": user}]
        if review.reply is not None and review.reply_at is not None:
            comments.append({"developerComment": {"text": review.reply, "lastModified": timestamp(review.reply_at)}})
        if review.broken:
            comments = []
        body: dict[str, Any] = {"reviewId": review.id, "comments": comments}
        if not review.anonymous:
            body["authorName"] = review.author
        return body

    def listed(self) -> list[FakeReview]:
        """What reviews.list can return: changed in the last 7 days, with text."""
        return [r for r in self.listing() if r.updated >= self.now - WINDOW and r.text]

    async def list_reviews(self, request: web.Request) -> web.Response:
        """reviews.list with maxResults and token."""
        if not self.authorized(request):
            return self.error(401, "Request had invalid authentication credentials.")
        if self.verbatim:
            return web.json_response(self.verbatim.pop(0))
        try:
            size = int(request.query.get("maxResults", "10"))
            offset = int(base64.urlsafe_b64decode(request.query["token"]).decode()) if "token" in request.query else 0
        except ValueError:
            return self.error(400, "Invalid token or maxResults.")
        if not 1 <= size <= MAX_RESULTS:
            return self.error(400, "Invalid maxResults.")
        reviews = self.listed()
        body: dict[str, Any] = {
            "reviews": [self.render(r) for r in self.window(reviews, offset, size)],
            "pageInfo": {"totalResults": len(reviews), "resultPerPage": size, "startIndex": offset},
        }
        if offset + size < len(reviews):
            body["tokenPagination"] = {"nextPageToken": base64.urlsafe_b64encode(str(offset + size).encode()).decode()}
        return web.json_response(body)

    async def reply(self, request: web.Request) -> web.Response:
        """reviews.reply: sets (or replaces) the developer reply; more than 350 characters is refused."""
        review = self.review_or_error(request)
        if isinstance(review, web.Response):
            return review
        body = await request.json()
        text = body.get("replyText") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text or len(text) > 350:
            return self.error(400, "Reply text must be between 1 and 350 characters.")
        self.record_reply(review, text)
        return web.json_response({"result": {"replyText": text, "lastEdited": timestamp(self.now)}})
