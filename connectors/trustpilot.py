"""`trustpilot`: a business unit's service reviews (private API), answered with a company reply."""

from __future__ import annotations

from typing import Any, Self
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, model_validator

from inbox.connector import RawItem, ReplyTarget, SentReply
from inbox.connectors.kit.auth import BearerToken, basic, password_grant
from inbox.connectors.kit.parse import VendorTime, each_valid, page_of
from inbox.connectors.kit.reviews import (
    NewestFirst,
    Request,
    ReviewConnector,
    ReviewSettings,
    join_text,
    next_number,
    review_item,
)

API_URL = "https://api.trustpilot.com"
PER_PAGE = 100  # the API's maximum
TOKEN_PATH = "/v1/oauth/oauth-business-users-for-applications/accesstoken"


class TrustpilotSettings(ReviewSettings):
    """A business unit, the API key, and a business user's token (or the password grant to get one)."""

    type: str = "trustpilot"
    business_unit_id: str = Field(min_length=1)
    business_user_id: str = Field(min_length=1)  # replies are signed by this business user
    api_key: SecretStr
    access_token: SecretStr | None = None
    # The password grant, so the 100-hour tokens renew themselves: the API secret and a business user's login.
    api_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> Self:
        grant = (self.api_secret, self.username, self.password)
        if any(grant) and not all(grant):
            raise ValueError("api_secret, username and password go together (all three, for the password grant)")
        if self.access_token is None and not all(grant):
            raise ValueError("set access_token, or api_secret, username and password")
        return self


class _Consumer(BaseModel):
    displayName: str | None = None


class _CompanyReply(BaseModel):
    text: str = ""
    createdAt: VendorTime | None = None


class _BusinessUnit(BaseModel):
    displayName: str | None = None


class _Review(BaseModel):
    id: str = Field(min_length=1)
    consumer: _Consumer = Field(default_factory=_Consumer)
    stars: int = Field(ge=1, le=5)
    title: str | None = None
    text: str | None = None
    language: str | None = None
    createdAt: VendorTime
    companyReply: _CompanyReply | None = None
    businessUnit: _BusinessUnit | None = None


class _ReviewsPage(BaseModel):
    reviews: list[Any]


class TrustpilotConnector(ReviewConnector[TrustpilotSettings, _Review]):
    """Polls the business unit's reviews newest first, page by page, until the cursor."""

    type = "trustpilot"
    api_url = API_URL
    size_param = "perPage"

    def headers(self, settings: TrustpilotSettings) -> dict[str, str]:
        """Every call carries the API key."""
        return {"apikey": settings.api_key.get_secret_value()}

    def authenticate(self, settings: TrustpilotSettings) -> BearerToken:
        """A configured token, or the password grant renewing the 100-hour tokens."""
        if settings.api_secret is None or settings.username is None or settings.password is None:
            return BearerToken(settings.access_token)
        credentials = {"Authorization": basic(settings.api_key.get_secret_value(), settings.api_secret)}
        refused = "Trustpilot password grant refused"
        grant = password_grant(
            self.client, TOKEN_PATH, settings.username, settings.password, refused, headers=credentials
        )
        return BearerToken(renew=grant)

    def first_request(self) -> Request:
        """Page 1 of the business unit's private review listing, newest first."""
        path = f"/v1/private/business-units/{quote(self.settings.business_unit_id, safe='')}/reviews"
        return path, {"perPage": PER_PAGE, "page": 1, "orderBy": "createdat.desc"}

    def page(self, data: Any, request: Request) -> tuple[list[Any], Request | None]:
        """Page numbers; fewer reviews than asked for is the last page (tap-trustpilot stops the same way)."""
        reviews = page_of(_ReviewsPage, data, f"{self.name}: reviews").reviews
        return reviews, next_number(request, "page", len(reviews), PER_PAGE)

    def _item(self, review: _Review, walk: NewestFirst) -> RawItem | None:
        if not walk.is_new(review.createdAt, review.id):
            return None
        reply = review.companyReply  # answered before we saw it: its clock is stopped
        return review_item(
            review.id,
            join_text(review.title, review.text),
            review.createdAt,
            review.stars,
            review.consumer.displayName,
            url=f"https://www.trustpilot.com/reviews/{review.id}",
            details={"language": review.language},
            existing_reply=reply.text if reply else None,
            answered_at=self.replied_at(reply.createdAt) if reply else None,
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Post the company reply, signed by the configured business user (201, no body)."""
        body = {"authorBusinessUserId": self.settings.business_user_id, "message": text}
        await self.call("POST", f"/v1/private/reviews/{self.review_id(target)}/reply", json_body=body)
        return SentReply(None, self.reply_url(target))

    async def posted_reply(self, target: ReplyTarget) -> tuple[str, str | None] | None:
        """The review's company reply."""
        review = await self.parsed(_Review, "GET", f"/v1/private/reviews/{self.review_id(target)}", "review")
        return (review.companyReply.text, None) if review.companyReply is not None else None

    def reply_url(self, target: ReplyTarget) -> str | None:
        """The review's public page."""
        return f"https://www.trustpilot.com/reviews/{self.review_id(target)}"

    async def check(self) -> str:
        """List one private review: proves the API key, the business user's token and the business unit."""
        page = await self.list_one(_ReviewsPage)
        shown = next(
            (r.businessUnit.displayName for r in each_valid(_Review, page.reviews, self.name) if r.businessUnit), None
        )
        return f"Trustpilot business unit {shown or self.settings.business_unit_id}: token accepted"
