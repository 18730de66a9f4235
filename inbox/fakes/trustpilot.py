"""A fake Trustpilot API (business units' private reviews, review replies, business-user OAuth).

Shapes follow inbox/fakes/data/trustpilot/: the private list GET_v1_private_business_units_id_reviews.SHAPE.json
(field set from tap-trustpilot's schema; query page, perPage 1..100, orderBy createdat.desc), the reply body of
POST_v1_private_reviews_id_reply.request.json (201, no body) and the password grant of POST_oauth_accesstoken.documented.json
(expires_in is a string). Error bodies are not documented: an Apigee-style {"fault": ...} is assumed; 429 carries
Retry-After (assumed; https://developers.trustpilot.com/rate-limiting only gives 833 calls / 5 min, 10k / hour).
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any, ClassVar

from aiohttp import web

from inbox.fakes.reviews import FakeReview, ReviewFake
from inbox.fakes.vendor import Fault

BUSINESS_UNIT_ID = "507f191e810c19729de860ea"
BUSINESS_USER_ID = "507f191e810c19729de860eb"
API_KEY = "fake-api-key"
API_SECRET = "fake-api-secret"
USERNAME = "support@acme.example"
PASSWORD = "fake-password"
ACCESS_TOKEN = "fake-business-user-token"
LIST = f"/v1/private/business-units/{BUSINESS_UNIT_ID}/reviews"
TOKEN_PATH = "/v1/oauth/oauth-business-users-for-applications/accesstoken"
MAX_PER_PAGE = 100


def fault(message: str, code: str) -> dict[str, Any]:
    """The gateway's error body (assumed Apigee format)."""
    return {"fault": {"faultstring": message, "detail": {"errorcode": code}}}


def stamp(review_time: datetime) -> str:
    """Trustpilot's timestamp, as in the SHAPE list ("2013-09-07T13:37:00Z")."""
    return review_time.strftime("%Y-%m-%dT%H:%M:%SZ")


class TrustpilotFake(ReviewFake):
    """api.trustpilot.com for one business unit, newest created first."""

    page_size: ClassVar[int] = MAX_PER_PAGE
    fetch_paths: ClassVar[tuple[str, ...]] = (LIST,)
    check_paths: ClassVar[tuple[str, ...]] = (LIST,)
    sort_by: ClassVar[str] = "created"

    def __init__(self) -> None:
        super().__init__()
        self.access_tokens = {ACCESS_TOKEN}
        self.token_grants = 0
        self.verbatim: list[Any] = []

    def routes(self, app: web.Application) -> None:
        """The private list, get and reply endpoints, and the password grant."""
        app.router.add_get(LIST, self.list_reviews)
        app.router.add_get("/v1/private/reviews/{review_id}", self.get_review)
        app.router.add_post("/v1/private/reviews/{review_id}/reply", self.reply)
        app.router.add_post(TOKEN_PATH, self.token)

    def render(self, review: FakeReview) -> dict[str, Any]:
        """A private review, per the SHAPE fixture's field set."""
        body: dict[str, Any] = {
            "links": [
                {"href": f"https://api.trustpilot.com/v1/reviews/{review.id}", "method": "GET", "rel": "reviews"}
            ],
            "id": review.id,
            "consumer": {
                "id": f"consumer-{review.author}",
                "displayName": review.author,
                "displayLocation": None,
                "numberOfReviews": 1,
            },
            "businessUnit": {"id": BUSINESS_UNIT_ID, "identifyingName": "acme.example", "displayName": "Acme"},
            "stars": review.rating,
            "title": review.title,
            "text": review.text,
            "language": review.language,
            "createdAt": stamp(review.created),
            "updatedAt": None if review.updated == review.created else stamp(review.updated),
            "companyReply": None
            if review.reply is None or review.reply_at is None
            else {"text": review.reply, "createdAt": stamp(review.reply_at)},
            "status": "active",
        }
        if review.broken:
            body["stars"] = "five"
        return body

    def error(self, status: int, message: str, code: str = "") -> web.Response:
        """The gateway's error answer."""
        return web.json_response(fault(message, code or str(status)), status=status)

    def authorized(self, request: web.Request) -> web.Response | None:
        """None when the API key and the business user's token are right, else the error to answer."""
        if request.headers.get("apikey") != API_KEY:
            return self.error(401, "Invalid ApiKey", "oauth.v2.InvalidApiKey")
        if self.bearer(request) not in self.access_tokens:
            return self.error(401, "Invalid access token", "keymanagement.service.invalid_access_token")
        return None

    async def list_reviews(self, request: web.Request) -> web.Response:
        """GET /v1/private/business-units/{id}/reviews."""
        if (refused := self.authorized(request)) is not None:
            return refused
        if self.verbatim:
            return web.json_response(self.verbatim.pop(0))
        try:
            per_page, page = int(request.query.get("perPage", "20")), int(request.query.get("page", "1"))
        except ValueError:
            return self.error(400, "Invalid paging")
        if (
            not (1 <= per_page <= MAX_PER_PAGE and page >= 1)
            or request.query.get("orderBy", "createdat.desc") != "createdat.desc"
        ):
            return self.error(400, "Invalid paging or order")
        reviews = self.listing()
        offset = (page - 1) * per_page
        links = []
        if offset + per_page < len(reviews):
            links.append(
                {
                    "href": f"https://api.trustpilot.com{LIST}?page={page + 1}&perPage={per_page}",
                    "method": "GET",
                    "rel": "next-page",
                }
            )
        return web.json_response(
            {"links": links, "reviews": [self.render(r) for r in self.window(reviews, offset, per_page)]}
        )

    async def get_review(self, request: web.Request) -> web.Response:
        """GET /v1/private/reviews/{id}."""
        if (refused := self.authorized(request)) is not None:
            return refused
        review = self.reviews.get(request.match_info["review_id"])
        if review is None:
            return self.error(404, "Review not found")
        return web.json_response(self.render(review))

    async def reply(self, request: web.Request) -> web.Response:
        """POST /v1/private/reviews/{id}/reply: 201 Created, no body."""
        if (refused := self.authorized(request)) is not None:
            return refused
        review = self.reviews.get(request.match_info["review_id"])
        if review is None:
            return self.error(404, "Review not found")
        body = await request.json()
        if (
            not isinstance(body, dict)
            or body.get("authorBusinessUserId") != BUSINESS_USER_ID
            or not body.get("message")
        ):
            return self.error(400, "authorBusinessUserId and message are required")
        self.record_reply(review, body["message"], author=body["authorBusinessUserId"])
        return web.Response(status=201)

    async def token(self, request: web.Request) -> web.Response:
        """The password grant: Basic base64(API_KEY:API_SECRET), form grant_type=password&username&password."""
        expected = "Basic " + base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
        form = await request.post()
        if request.headers.get("Authorization") != expected:
            return self.error(401, "Invalid client credentials")
        if form.get("grant_type") != "password" or (form.get("username"), form.get("password")) != (USERNAME, PASSWORD):
            return self.error(400, "Invalid username or password", "invalid_grant")
        self.token_grants += 1
        token = f"granted-token-{self.token_grants}"
        self.access_tokens.add(token)
        return web.json_response(
            {"access_token": token, "refresh_token": f"refresh-{self.token_grants}", "expires_in": "359999"}
        )

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """429 with Retry-After (assumed)."""
        return Fault(
            429,
            {"Retry-After": str(int(reset_in))},
            json.dumps(fault("Rate limit quota violation", "policies.ratelimit.QuotaViolation")),
        )

    def fault_unauthorized(self) -> Fault:
        """401 for an expired business-user token."""
        return Fault(401, {}, json.dumps(fault("Access Token expired", "keymanagement.service.access_token_expired")))
