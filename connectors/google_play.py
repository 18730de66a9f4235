"""`google_play`: an app's Google Play reviews (Android Publisher v3), answered with the developer reply."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, Field

from inbox.connector import RawItem, ReplyTarget, SentReply
from inbox.connectors.kit.google import GoogleConnector, GoogleSettings, SecondsNanos
from inbox.connectors.kit.parse import page_of
from inbox.connectors.kit.reviews import NewestFirst, Request, review_item, with_token

log = logging.getLogger(__name__)

PAGE_SIZE = 100
# Polling less often than daily leaves too little of the window to notice and fix a failing connector.
SAFE_POLL_SECONDS = 24 * 3600
# Play allows 200 review GETs per hour and app; faster polls leave no room for second pages and find_reply.
FASTEST_POLL_SECONDS = 30


class GooglePlaySettings(GoogleSettings):
    """The app's `package_name` and OAuth credentials of an account allowed to reply to reviews."""

    type: str = "google_play"
    package_name: str = Field(min_length=1)


class _UserComment(BaseModel):
    text: str = ""
    starRating: int
    lastModified: SecondsNanos
    reviewerLanguage: str | None = None


class _DeveloperComment(BaseModel):
    text: str = ""
    lastModified: SecondsNanos | None = None


class _Comment(BaseModel):
    userComment: _UserComment | None = None
    developerComment: _DeveloperComment | None = None


class _Review(BaseModel):
    reviewId: str = Field(min_length=1)
    authorName: str | None = None
    comments: list[_Comment] = Field(min_length=1)

    @property
    def user(self) -> _UserComment | None:
        return next((c.userComment for c in self.comments if c.userComment is not None), None)

    @property
    def developer(self) -> _DeveloperComment | None:
        return next((c.developerComment for c in self.comments if c.developerComment is not None), None)


class _TokenPagination(BaseModel):
    nextPageToken: str | None = None


class _ReviewsPage(BaseModel):
    reviews: list[Any] = Field(default_factory=list)
    tokenPagination: _TokenPagination | None = None


class GooglePlayConnector(GoogleConnector[GooglePlaySettings, _Review]):
    """Polls the app's recent reviews newest first; each version of a review is an item in the review's thread."""

    type = "google_play"
    # reviews.list only returns reviews created or changed in the last seven days (the base warns of an older cursor).
    history_window = timedelta(days=7)
    api_url = "https://androidpublisher.googleapis.com"
    scope = "https://www.googleapis.com/auth/androidpublisher"
    size_param = "maxResults"

    def first_request(self) -> Request:
        """The app's review listing: Play lists newest first on its own."""
        path = f"/androidpublisher/v3/applications/{quote(self.settings.package_name, safe='')}/reviews"
        return path, {"maxResults": PAGE_SIZE}

    def page(self, data: Any, request: Request) -> tuple[list[Any], Request | None]:
        """`reviews`, and `tokenPagination.nextPageToken` as the next `token`."""
        page = page_of(_ReviewsPage, data, f"{self.name}: reviews")
        following = page.tokenPagination.nextPageToken if page.tokenPagination else None
        return page.reviews, with_token(request, "token", following)

    def _item(self, review: _Review, walk: NewestFirst) -> RawItem | None:
        user = review.user
        if user is None:
            log.warning("%s: skipped review %r without the user's comment", self.name, review.reviewId)
            return None
        at = user.lastModified
        if not walk.is_new(at, review.reviewId):
            return None
        developer, existing, answered_at = review.developer, None, None
        if developer is not None and developer.lastModified is not None and developer.lastModified >= at:
            # The developer reply is newer than this version of the review: answered (in the Play Console, or by us).
            existing, answered_at = developer.text, developer.lastModified
        # Play has no creation time to tell a first sighting from an edit, so every version is its own item;
        # the first one opens the review's thread and an edit is a follow-up in it.
        return review_item(
            review.reviewId,
            user.text,
            at,
            user.starRating,
            review.authorName,
            version=f"{review.reviewId}@{at.replace(microsecond=0).timestamp():.0f}",
            url=f"https://play.google.com/store/apps/details?id={quote(self.settings.package_name)}&reviewId={quote(review.reviewId)}",
            details={"language": user.reviewerLanguage},
            existing_reply=existing,
            answered_at=answered_at,
        )

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """Set the developer reply (replaces an earlier one)."""
        await self.call("POST", f"{self.review_path(target)}:reply", json_body={"replyText": text})
        return SentReply(None)

    def owner_reply(self, review: _Review) -> str | None:
        """The review's developer reply."""
        return None if review.developer is None else review.developer.text

    async def check(self) -> str:
        """List one review: proves the token and the account's access to the app; says how far back Play lists."""
        await self.list_one(_ReviewsPage)
        hours = self.settings.poll_seconds / 3600
        every = f"{hours:.1f} h" if hours >= 1 else f"{self.settings.poll_seconds / 60:.0f} min"
        return self.with_poll_warning(
            f"Google Play app {self.settings.package_name}: Play lists only the last 7 days of reviews; polling every {every}"
        )

    def poll_warning(self) -> str | None:
        """Polls too rare for Play's 7-day listing, or too frequent for its quota."""
        poll = self.settings.poll_seconds
        if poll > SAFE_POLL_SECONDS:
            return (
                f"poll_seconds = {poll:.0f} is longer than a day; Google Play only lists reviews from "
                "the last 7 days, so a few failed polls lose reviews for good: poll at least daily"
            )
        if poll < FASTEST_POLL_SECONDS:
            return f"poll_seconds = {poll:g} spends most of Play's 200 review requests per hour: poll every {FASTEST_POLL_SECONDS} s or less often"
        return None
