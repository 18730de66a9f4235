"""A fake App Store Connect API: customerReviews of one app, customerReviewResponses, ES256 JWTs checked for real.

Shapes follow inbox/fakes/data/app_store/: the customerReviews list is VERBATIM Apple's documented example
(JSON:API data[], links.self/next with cursor=, meta.paging); the response request body and the 201 SHAPE of
CustomerReviewResponseV1Response. Errors are Apple's ErrorResponse {"errors": [{id, status, code, title, detail}]};
every answer carries `X-Rate-Limit: user-hour-lim:3500;user-hour-rem:N;` and a 429 names no reset time
(https://developer.apple.com/documentation/appstoreconnectapi/identifying-rate-limits: a rolling hour).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import timedelta, timezone
from typing import Any, ClassVar

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec

from inbox.fakes.reviews import FakeReview, ReviewFake
from inbox.fakes.vendor import Fault

# The example key id and issuer id of Apple's "Generating Tokens for API Requests".
KEY_ID = "2X9R4HXF34"
ISSUER_ID = "57246542-96fe-1a63-e053-0824d011072a"
APP_ID = "1234567890"
APPLE = "https://api.appstoreconnect.apple.com"
LIST = f"/v1/apps/{APP_ID}/customerReviews"
MAX_LIMIT = 200
PACIFIC = timezone(timedelta(hours=-7))  # Apple's example writes "2024-01-02T11:19:36-07:00"
NOT_AUTHORIZED = (
    "Provide a properly configured and signed bearer token, and make sure that it has not expired. "
    "Learn more about Generating Tokens for API Requests https://developer.apple.com/go/?id=api-generating-tokens"
)


def apple_error(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    """Apple's ErrorResponse."""
    return {
        "errors": [{"id": str(uuid.uuid4()), "status": str(status), "code": code, "title": title, "detail": detail}]
    }


class AppStoreFake(ReviewFake):
    """api.appstoreconnect.apple.com for one app, newest review first."""

    page_size: ClassVar[int] = MAX_LIMIT
    fetch_paths: ClassVar[tuple[str, ...]] = (LIST,)
    check_paths: ClassVar[tuple[str, ...]] = (f"/v1/apps/{APP_ID}",)
    sort_by: ClassVar[str] = "created"

    def __init__(self, public_key: ec.EllipticCurvePublicKey) -> None:
        super().__init__()
        self.public_key = public_key
        self.remaining = 3499
        self.tokens: list[str] = []  # every accepted JWT, in order
        self.verbatim: list[Any] = []

    def routes(self, app: web.Application) -> None:
        """Apps, customerReviews, customerReviewResponses."""
        app.router.add_get(f"/v1/apps/{APP_ID}", self.get_app)
        app.router.add_get(LIST, self.list_reviews)
        app.router.add_get("/v1/customerReviews/{review_id}/response", self.get_response)
        app.router.add_post("/v1/customerReviewResponses", self.create_response)

    def render(self, review: FakeReview) -> dict[str, Any]:
        """A customerReviews resource, as in Apple's example."""
        attributes: dict[str, Any] = {
            "rating": review.rating,
            "title": review.title or None,
            "body": review.text,
            "reviewerNickname": review.author,
            "createdDate": review.created.astimezone(PACIFIC).isoformat(timespec="seconds"),
            "territory": review.extra.get("territory", "USA"),
        }
        if review.broken:
            del attributes["createdDate"]
        related = f"{APPLE}/v1/customerReviews/{review.id}"
        return {
            "type": "customerReviews",
            "id": review.id,
            "attributes": attributes,
            "relationships": {
                "response": {"links": {"self": f"{related}/relationships/response", "related": f"{related}/response"}}
            },
            "links": {"self": related},
        }

    def respond(self, body: Any, status: int = 200) -> web.Response:
        """An answer with the rate-limit header Apple puts on every response."""
        self.remaining = max(0, self.remaining - 1)
        return web.json_response(
            body, status=status, headers={"X-Rate-Limit": f"user-hour-lim:3500;user-hour-rem:{self.remaining};"}
        )

    def error(self, status: int, message: str, code: str = "") -> web.Response:
        """Apple's ErrorResponse."""
        return self.respond(apple_error(status, code or "ERROR", message, message), status)

    def verify(self, request: web.Request) -> web.Response | None:
        """None for a valid App Store Connect JWT (ES256, our kid, iss, aud, at most 20 minutes), else the 401."""
        token = self.bearer(request) or ""
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != KEY_ID or header.get("alg") != "ES256":
                raise jwt.InvalidTokenError(f"wrong header {header}")
            claims = jwt.decode(
                token,
                self.public_key,
                algorithms=["ES256"],
                audience="appstoreconnect-v1",
                issuer=ISSUER_ID,
                options={"require": ["exp", "iss", "aud"]},
            )
            if claims["exp"] - claims.get("iat", time.time()) > 1200 or claims["exp"] - time.time() > 1200:
                raise jwt.InvalidTokenError("a token may live 20 minutes at most")
        except jwt.PyJWTError:
            return self.respond(
                apple_error(
                    401, "NOT_AUTHORIZED", "Authentication credentials are missing or invalid.", NOT_AUTHORIZED
                ),
                401,
            )
        self.tokens.append(token)
        return None

    async def get_app(self, request: web.Request) -> web.Response:
        """GET /v1/apps/{id}."""
        if (refused := self.verify(request)) is not None:
            return refused
        return self.respond(
            {
                "data": {
                    "type": "apps",
                    "id": APP_ID,
                    "attributes": {"name": "Acme Shop", "bundleId": "com.acme.shop"},
                    "links": {"self": f"{APPLE}/v1/apps/{APP_ID}"},
                },
                "links": {"self": f"{APPLE}/v1/apps/{APP_ID}"},
            }
        )

    async def list_reviews(self, request: web.Request) -> web.Response:
        """GET /v1/apps/{id}/customerReviews?sort=-createdDate&limit=N[&cursor=...]."""
        if (refused := self.verify(request)) is not None:
            return refused
        if self.verbatim:
            return self.respond(self.verbatim.pop(0))
        try:
            limit = int(request.query.get("limit", "50"))
            offset = int(base64.urlsafe_b64decode(request.query["cursor"]).decode()) if "cursor" in request.query else 0
        except ValueError:
            return self.error(400, "A parameter has an invalid value", "PARAMETER_ERROR.INVALID")
        if not 1 <= limit <= MAX_LIMIT or request.query.get("sort") != "-createdDate":
            return self.error(400, "A parameter has an invalid value", "PARAMETER_ERROR.INVALID")
        reviews = self.listing()
        query = f"limit={limit}&sort=-createdDate"
        links = {"self": f"{APPLE}{LIST}?{query}"}
        if offset + limit < len(reviews):
            cursor = base64.urlsafe_b64encode(str(offset + limit).encode()).decode()
            links["next"] = f"{APPLE}{LIST}?cursor={cursor}&{query}"  # Apple's own host, whoever serves it
        page = [self.render(r) for r in self.window(reviews, offset, limit)]
        return self.respond({"data": page, "links": links, "meta": {"paging": {"total": len(reviews), "limit": limit}}})

    def response_document(self, review: FakeReview) -> dict[str, Any]:
        """CustomerReviewResponseV1Response (SHAPE)."""
        response_id = f"response-{review.id}"
        modified = (review.reply_at or self.now).isoformat(timespec="seconds")
        return {
            "data": {
                "type": "customerReviewResponses",
                "id": response_id,
                "attributes": {"responseBody": review.reply, "lastModifiedDate": modified, "state": "PENDING_PUBLISH"},
                "relationships": {
                    "review": {
                        "links": {"self": f"{APPLE}/v1/customerReviewResponses/{response_id}/relationships/review"}
                    }
                },
                "links": {"self": f"{APPLE}/v1/customerReviewResponses/{response_id}"},
            },
            "links": {"self": f"{APPLE}/v1/customerReviewResponses/{response_id}"},
        }

    async def get_response(self, request: web.Request) -> web.Response:
        """GET /v1/customerReviews/{id}/response: the response, or 404 when there is none."""
        if (refused := self.verify(request)) is not None:
            return refused
        review = self.reviews.get(request.match_info["review_id"])
        if review is None or review.reply is None:
            return self.error(404, "The specified resource does not exist", "NOT_FOUND")
        return self.respond(self.response_document(review))

    async def create_response(self, request: web.Request) -> web.Response:
        """POST /v1/customerReviewResponses: 201, or 409 when the review already has a response."""
        if (refused := self.verify(request)) is not None:
            return refused
        body = await request.json()
        try:
            data = body["data"]
            text, target = data["attributes"]["responseBody"], data["relationships"]["review"]["data"]
            types = (data["type"], target["type"])
        except (KeyError, TypeError):
            return self.error(422, "The request entity is invalid", "ENTITY_ERROR")
        if types != ("customerReviewResponses", "customerReviews") or not isinstance(text, str) or not text:
            return self.error(422, "The request entity is invalid", "ENTITY_ERROR")
        review = self.reviews.get(str(target.get("id")))
        if review is None:
            return self.error(404, "The specified resource does not exist", "NOT_FOUND")
        if review.reply is not None:
            # The 409 code is assumed; Apple documents 409 among this endpoint's errors.
            return self.error(409, "A response for this review already exists", "ENTITY_ERROR.RELATIONSHIP.INVALID")
        self.record_reply(review, text)
        return self.respond(self.response_document(review), 201)

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """Apple's 429: RATE_LIMIT_EXCEEDED with the budget at zero, and no reset time (a rolling hour)."""
        body = apple_error(
            429,
            "RATE_LIMIT_EXCEEDED",
            "The request rate limit has been reached.",
            "We've received too many requests for this API. Please wait and try again or slow down your request rate.",
        )
        return Fault(429, {"X-Rate-Limit": "user-hour-lim:3500;user-hour-rem:0;"}, json.dumps(body))

    def fault_unauthorized(self) -> Fault:
        """Apple's 401 NOT_AUTHORIZED."""
        body = apple_error(401, "NOT_AUTHORIZED", "Authentication credentials are missing or invalid.", NOT_AUTHORIZED)
        return Fault(401, {"X-Rate-Limit": "user-hour-lim:3500;user-hour-rem:3499;"}, json.dumps(body))
