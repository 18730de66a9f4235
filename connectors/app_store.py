"""`app_store`: an app's App Store customer reviews (App Store Connect API), answered with a developer response."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from pydantic import BaseModel, Field, SecretStr, field_validator

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
)

log = logging.getLogger(__name__)

API_URL = "https://api.appstoreconnect.apple.com"
AUDIENCE = "appstoreconnect-v1"
PAGE_LIMIT = 200  # the API's maximum
# Apple refuses tokens that live longer than 20 minutes; a shorter life leaves room for clock skew.
TOKEN_LIFETIME = 15 * 60
MAX_REPLY_CHARS = 5970


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
        # Secret stores often flatten the .p8 file's newlines to "\n".
        pem = value.get_secret_value().replace("\\n", "\n").strip()
        try:
            key = load_pem_private_key(pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ValueError("is not a PEM private key (paste the whole .p8 file, BEGIN and END lines included)") from exc
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


class _Review(BaseModel):
    id: str = Field(min_length=1)
    attributes: _Attributes


class _Links(BaseModel):
    next: str | None = None


class _ReviewsPage(BaseModel):
    data: list[Any]
    links: _Links = Field(default_factory=_Links)


class _ResponseAttributes(BaseModel):
    responseBody: str = ""
    state: str | None = None


class _ResponseResource(BaseModel):
    id: str
    attributes: _ResponseAttributes = Field(default_factory=_ResponseAttributes)


class _ResponseDocument(BaseModel):
    data: _ResponseResource | None = None


class _AppAttributes(BaseModel):
    name: str | None = None
    bundleId: str | None = None


class _App(BaseModel):
    attributes: _AppAttributes = Field(default_factory=_AppAttributes)


class _AppDocument(BaseModel):
    data: _App


class AppStoreConnector(Connector[AppStoreSettings, ReviewCursor]):
    """Polls the app's reviews newest first (JSON:API `links.next` paging) with a self-signed ES256 token."""

    type = "app_store"
    settings_model = AppStoreSettings
    cursor_model = ReviewCursor
    channel = "app_store"
    max_reply_chars = MAX_REPLY_CHARS

    def __init__(self, settings: AppStoreSettings) -> None:
        super().__init__(settings)
        self.client = VendorClient(self.name, settings.api_url or API_URL)
        self.token = BearerToken(renew=self._sign)
        self.app_path = f"/v1/apps/{quote(settings.app_id, safe='')}"

    async def fetch(self, cursor: ReviewCursor | None) -> AsyncIterator[Page[ReviewCursor]]:
        """Pages of reviews created since the cursor; the cursor comes last, once every page is stored."""
        walk = NewestFirst(cursor, self.settings.first_poll_hours)
        guard = PageGuard(f"{self.name}: customerReviews")
        path: str | None = f"{self.app_path}/customerReviews"
        params: dict[str, Any] | None = {"sort": "-createdDate", "limit": PAGE_LIMIT}
        while path is not None:
            response = await self.token.request(self.client, "GET", path, params=params)
            page = page_of(_ReviewsPage, response.data, f"{self.name}: customerReviews")
            reviews = each_valid(_Review, page.data, self.name)
            yield Page([self._item(r) for r in reviews if walk.is_new(aware(r.attributes.createdDate), r.id)])
            if walk.done:
                break
            # The next link keeps sort and limit, and carries Apple's opaque cursor.
            path, params = guard.next(_under_api_url(page.links.next)), None
        yield Page([], walk.cursor())

    def _item(self, review: _Review) -> RawItem:
        attributes = review.attributes
        handle, name = reviewer(attributes.reviewerNickname, review.id)
        return RawItem(
            external_id=review.id,
            text=join_text(attributes.title, attributes.body),
            posted_at=aware(attributes.createdDate),
            kind=Kind.REVIEW,
            author_handle=handle,
            author_name=name,
            thread_id=review.id,
            rating=attributes.rating,
            reply_to={"review_id": review.id, "territory": attributes.territory},
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Create the developer response (201); when one already exists (409), it counts if it says `text`."""
        body = {
            "data": {
                "type": "customerReviewResponses",
                "attributes": {"responseBody": text},
                "relationships": {"review": {"data": {"type": "customerReviews", "id": _review_id(target)}}},
            }
        }
        try:
            response = await self.token.request(self.client, "POST", "/v1/customerReviewResponses", json_body=body)
        except PermanentError as exc:
            if exc.status != 409:
                raise
            existing = await self.find_reply(target, text)
            if existing is None:
                raise PermanentError(
                    "this review already has a different developer response; edit or delete it in App Store Connect"
                ) from exc
            return existing
        document = page_of(_ResponseDocument, response.data, f"{self.name}: customerReviewResponses")
        return SentReply(document.data.id if document.data else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """The review's developer response, when it already says `text`."""
        try:
            response = await self.token.request(self.client, "GET", f"/v1/customerReviews/{quote(_review_id(target), safe='')}/response")
        except PermanentError as exc:
            if exc.status == 404:  # no response yet
                return None
            raise
        document = page_of(_ResponseDocument, response.data, f"{self.name}: customerReviews/response")
        if document.data is not None and same_text(document.data.attributes.responseBody, text):
            return SentReply(document.data.id)
        return None

    async def check(self) -> str:
        """Read the app's name: proves the key, its role and the app id."""
        response = await self.token.request(self.client, "GET", self.app_path, params={"fields[apps]": "name,bundleId"})
        app = page_of(_AppDocument, response.data, f"{self.name}: apps").data.attributes
        return f"App Store app {app.name or self.settings.app_id} ({app.bundleId or 'no bundle id'})"

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    async def _sign(self) -> tuple[str, float]:
        settings = self.settings
        now = int(time.time())
        claims = {"iss": settings.issuer_id, "iat": now, "exp": now + TOKEN_LIFETIME, "aud": AUDIENCE}
        try:
            token = jwt.encode(claims, settings.private_key.get_secret_value(), algorithm="ES256", headers={"kid": settings.key_id, "typ": "JWT"})
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            raise AuthError(f"cannot sign the App Store Connect token with private_key: {exc}") from exc
        return token, TOKEN_LIFETIME


def _review_id(target: ReplyTarget) -> str:
    return str(target.reply_to.get("review_id") or target.thread_id)


def _under_api_url(link: str | None) -> str | None:
    """A `next` link as a path under our api_url: Apple's links name Apple's host, a proxy or test server is elsewhere."""
    if link is None:
        return None
    parts = urlsplit(link)
    return urlunsplit(("", "", parts.path, parts.query, ""))
