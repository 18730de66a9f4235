"""`trustpilot`: a business unit's service reviews (private API), answered with a company reply."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Self
from urllib.parse import quote

from pydantic import BaseModel, Field, SecretStr, model_validator

from inbox.connector import AuthError, Connector, Kind, Page, PermanentError, RawItem, ReplyTarget, SentReply
from inbox.http import PageGuard, VendorClient
from inbox.connectors._reviews import (
    BearerToken,
    NewestFirst,
    ReviewCursor,
    ReviewSettings,
    VendorTime,
    aware,
    each_valid,
    join_text,
    page_of,
    reviewer,
    same_text,
    token_from,
)

log = logging.getLogger(__name__)

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
    id: str | None = None
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


class TrustpilotConnector(Connector[TrustpilotSettings, ReviewCursor]):
    """Polls the business unit's reviews newest first, page by page, until the cursor."""

    type = "trustpilot"
    settings_model = TrustpilotSettings
    cursor_model = ReviewCursor
    channel = "trustpilot"

    def __init__(self, settings: TrustpilotSettings) -> None:
        super().__init__(settings)
        self.client = VendorClient(self.name, settings.api_url or API_URL, headers={"apikey": settings.api_key.get_secret_value()})
        self.token = self._bearer(settings)
        self.reviews_path = f"/v1/private/business-units/{quote(settings.business_unit_id, safe='')}/reviews"

    async def fetch(self, cursor: ReviewCursor | None) -> AsyncIterator[Page[ReviewCursor]]:
        """Pages of reviews created since the cursor; the cursor comes last, once every page is stored."""
        walk = NewestFirst(cursor, self.settings.first_poll_hours)
        guard = PageGuard(f"{self.name}: reviews")
        number = 1
        while True:
            guard.next(str(number))
            params = {"perPage": PER_PAGE, "page": number, "orderBy": "createdat.desc"}
            response = await self.token.request(self.client, "GET", self.reviews_path, params=params)
            page = page_of(_ReviewsPage, response.data, f"{self.name}: reviews")
            items = [self._item(r) for r in each_valid(_Review, page.reviews, self.name) if walk.is_new(aware(r.createdAt), r.id)]
            yield Page(items)
            # Fewer than asked for is the last page (tap-trustpilot stops the same way).
            if walk.done or len(page.reviews) < PER_PAGE:
                break
            number += 1
        yield Page([], walk.cursor())

    def _item(self, review: _Review) -> RawItem:
        handle, name = reviewer(review.consumer.displayName, review.id)
        reply_to: dict[str, Any] = {"review_id": review.id, "language": review.language}
        answered_at = None
        if (reply := review.companyReply) is not None:
            # Answered outside cx-inbox before we saw it: its clock is stopped, and the note kept because our reply would replace it.
            reply_to["existing_reply"] = reply.text
            answered_at = aware(reply.createdAt) if reply.createdAt else datetime.now(UTC)  # undated: answered by now at the latest
        return RawItem(
            external_id=review.id,
            text=join_text(review.title, review.text),
            posted_at=aware(review.createdAt),
            kind=Kind.REVIEW,
            author_handle=handle,
            author_name=name,
            thread_id=review.id,
            url=f"https://www.trustpilot.com/reviews/{review.id}",
            rating=review.stars,
            reply_to=reply_to,
            answered_at=answered_at,
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Post the company reply, signed by the configured business user (201, no body)."""
        review_id = self._review_id(target)
        body = {"authorBusinessUserId": self.settings.business_user_id, "message": text}
        await self.token.request(self.client, "POST", f"/v1/private/reviews/{quote(review_id, safe='')}/reply", json_body=body)
        return SentReply(None, f"https://www.trustpilot.com/reviews/{review_id}")

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """The review's company reply, when it already says `text`."""
        review_id = self._review_id(target)
        response = await self.token.request(self.client, "GET", f"/v1/private/reviews/{quote(review_id, safe='')}")
        review = page_of(_Review, response.data, f"{self.name}: review")
        if review.companyReply is not None and same_text(review.companyReply.text, text):
            return SentReply(None, f"https://www.trustpilot.com/reviews/{review_id}")
        return None

    async def check(self) -> str:
        """List one private review: proves the API key, the business user's token and the business unit."""
        params = {"perPage": 1, "page": 1, "orderBy": "createdat.desc"}
        response = await self.token.request(self.client, "GET", self.reviews_path, params=params)
        page = page_of(_ReviewsPage, response.data, f"{self.name}: reviews")
        shown = next((r.businessUnit.displayName for r in each_valid(_Review, page.reviews, self.name) if r.businessUnit), None)
        return f"Trustpilot business unit {shown or self.settings.business_unit_id}: token accepted"

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    def _bearer(self, settings: TrustpilotSettings) -> BearerToken:
        if settings.api_secret is None or settings.username is None or settings.password is None:
            return BearerToken(settings.access_token)
        pair = f"{settings.api_key.get_secret_value()}:{settings.api_secret.get_secret_value()}"
        basic = "Basic " + base64.b64encode(pair.encode()).decode()
        form = {"grant_type": "password", "username": settings.username, "password": settings.password.get_secret_value()}

        async def password_grant() -> tuple[str, float]:
            try:
                response = await self.client.request("POST", TOKEN_PATH, data=form, headers={"Authorization": basic})
            except PermanentError as exc:
                raise AuthError(f"Trustpilot password grant refused: {exc}") from exc
            return token_from(response, "Trustpilot's token endpoint")

        return BearerToken(renew=password_grant)

    @staticmethod
    def _review_id(target: ReplyTarget) -> str:
        return str(target.reply_to.get("review_id") or target.thread_id)
