"""`app_store`: an app's App Store customer reviews (App Store Connect API), answered with a developer response."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, Field, SecretStr, field_validator

from inbox.connector import PermanentError, RawItem, ReplyTarget, SentReply
from inbox.connectors.kit.auth import BearerToken, pem_private_key, self_signed
from inbox.connectors.kit.http import path_of
from inbox.connectors.kit.jsonapi import Document, Listing, Resource, creating
from inbox.connectors.kit.parse import VendorTime, page_of
from inbox.connectors.kit.reviews import NewestFirst, Request, ReviewConnector, ReviewSettings, join_text, review_item

API_URL = "https://api.appstoreconnect.apple.com"
AUDIENCE = "appstoreconnect-v1"
PAGE_LIMIT = 200  # the API's maximum
# Apple refuses tokens that live longer than 20 minutes; a shorter life leaves room for clock skew.
TOKEN_LIFETIME = 15 * 60


class AppStoreSettings(ReviewSettings):
    """An App Store Connect API key (`key_id`, `issuer_id`, the .p8 `private_key`) and the app's Apple ID."""

    type: str = "app_store"
    key_id: str = Field(min_length=1)
    issuer_id: str = Field(min_length=1)
    private_key: SecretStr
    app_id: str = Field(min_length=1)

    @field_validator("private_key")
    @classmethod
    def _is_a_p256_key(cls, value: SecretStr) -> SecretStr:
        pem, key = pem_private_key(value.get_secret_value(), "the whole .p8 file")
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("must be an App Store Connect (.p8, EC P-256) key")
        return SecretStr(pem)


class _Attributes(BaseModel):
    rating: int = Field(ge=1, le=5)
    title: str | None = None
    body: str | None = None
    reviewerNickname: str | None = None
    createdDate: VendorTime
    territory: str | None = None


class _ResponseAttributes(BaseModel):
    responseBody: str = ""
    state: str | None = None


class _AppAttributes(BaseModel):
    name: str | None = None
    bundleId: str | None = None


_Review = Resource[_Attributes]
# A developer response, or none (`data: null`).
_ResponseDocument = Document[Resource[_ResponseAttributes] | None]


class AppStoreConnector(ReviewConnector[AppStoreSettings, _Review]):
    """Polls the app's reviews newest first (JSON:API `links.next` paging) with a self-signed ES256 token."""

    type = "app_store"
    api_url = API_URL
    listing = "customerReviews"

    def authenticate(self, settings: AppStoreSettings) -> BearerToken:
        """A token we sign ourselves with the API key, renewed before its 15 minutes are up."""
        self.app_path = f"/v1/apps/{quote(settings.app_id, safe='')}"
        claims, headers = {"iss": settings.issuer_id, "aud": AUDIENCE}, {"kid": settings.key_id, "typ": "JWT"}
        what = "the App Store Connect token"
        return self_signed(settings.private_key, "ES256", claims, TOKEN_LIFETIME, self.clock, what, headers)

    def first_request(self) -> Request:
        """Newest first, the most the API gives at once."""
        return f"{self.app_path}/customerReviews", {"sort": "-createdDate", "limit": PAGE_LIMIT}

    def page(self, data: Any, request: Request) -> tuple[list[Any], Request | None]:
        """`data`; the next link keeps sort and limit, and carries Apple's opaque cursor (on Apple's host: made a path)."""
        page = page_of(Listing, data, f"{self.name}: customerReviews")
        return page.data, None if page.links.next is None else (path_of(page.links.next), None)

    def _item(self, review: _Review, walk: NewestFirst) -> RawItem | None:
        attributes = review.attributes
        if not walk.is_new(attributes.createdDate, review.id):
            return None
        return review_item(
            review.id,
            join_text(attributes.title, attributes.body),
            attributes.createdDate,
            attributes.rating,
            attributes.reviewerNickname,
            details={"territory": attributes.territory},
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Create the developer response (201); when one already exists (409), it counts if it says `text`."""
        review = ("customerReviews", str(target.reply_to.get("review_id") or target.thread_id))
        body = creating("customerReviewResponses", {"responseBody": text}, review=review)
        try:
            document = await self.parsed(
                _ResponseDocument, "POST", "/v1/customerReviewResponses", "customerReviewResponses", json_body=body
            )
        except PermanentError as exc:
            if exc.status != 409:
                raise
            if (existing := await self.find_reply(target, text)) is None:
                raise PermanentError(
                    "this review already has a different developer response; edit or delete it in App Store Connect"
                ) from exc
            return existing
        return SentReply(document.data.id if document.data else None)

    async def posted_reply(self, target: ReplyTarget) -> tuple[str, str | None] | None:
        """The review's developer response (404: none yet)."""
        path = f"/v1/customerReviews/{self.review_id(target)}/response"
        try:
            document = await self.parsed(_ResponseDocument, "GET", path, "customerReviews/response")
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise
        return None if document.data is None else (document.data.attributes.responseBody, document.data.id)

    async def check(self) -> str:
        """Read the app's name: proves the key, its role and the app id."""
        params = {"fields[apps]": "name,bundleId"}
        app = (await self.parsed(Document[Resource[_AppAttributes]], "GET", self.app_path, "apps", params=params)).data
        name, bundle = app.attributes.name or self.settings.app_id, app.attributes.bundleId or "no bundle id"
        return f"App Store app {name} ({bundle})"
