"""The review-site base: the newest-first walk against a time cursor, reviewer names, and the connector class the four share."""

from __future__ import annotations

import logging
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, TypeVar, cast
from urllib.parse import quote

from pydantic import BaseModel, Field

from inbox.connector import (
    Clock,
    ConnectorSettings,
    Kind,
    Page,
    RawItem,
    ReplyTarget,
    SentReply,
    display_name,
    generic_arguments,
    wall_clock,
)
from inbox.connectors.kit.auth import BearerToken
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import Response, VendorClient
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.parse import each_valid, page_of
from inbox.connectors.kit.text import same_reply

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
P = TypeVar("P", bound=BaseModel)  # any page model a review connector reads, not only its review
RS = TypeVar("RS", bound="ReviewSettings")
# (path, query) of one listing request; query None: the path (a vendor's `next` link) carries it.
Request = tuple[str, Mapping[str, Any] | None]


class ReviewSettings(ConnectorSettings):
    """Keys every review-site connector takes besides its platform's."""

    # A first poll reads this far back rather than the account's whole history (often thousands of reviews).
    first_poll_hours: float = Field(default=168, gt=0)


class ReviewCursor(BaseModel):
    """The newest review time seen, and the reviews seen at exactly that time (the next poll shows them again)."""

    newest: datetime
    ids: list[str] = Field(default_factory=list)


class NewestFirst:
    """Reads a newest-first listing against the cursor: which reviews are new, when to stop, the next cursor."""

    def __init__(self, cursor: ReviewCursor | None, first_poll_hours: float, now: datetime | None = None) -> None:
        self.start = cursor
        self.floor = cursor.newest if cursor else (now or wall_clock()) - timedelta(hours=first_poll_hours)
        self.seen_at_floor = frozenset(cursor.ids) if cursor else frozenset()
        self.newest = self.floor
        self.ids: set[str] = set(self.seen_at_floor)
        self.done = False  # a page reached back past the cursor: later pages only hold older reviews

    def is_new(self, at: datetime, key: str) -> bool:
        """True for a review (version) the cursor does not cover yet; it then counts for the next cursor."""
        if at < self.floor:
            self.done = True
            return False
        if at == self.floor and key in self.seen_at_floor:
            return False
        if at > self.newest:
            self.newest, self.ids = at, {key}
        elif at == self.newest:
            self.ids.add(key)
        return True

    def known(self, at: datetime, key: str) -> bool:
        """True when a review created at `at` was already listed at the previous poll."""
        if self.start is None:
            return False
        return at < self.start.newest or (at == self.start.newest and key in self.seen_at_floor)

    def cursor(self) -> ReviewCursor:
        """Where the next poll starts: safe only once every page of this poll is stored."""
        return ReviewCursor(newest=self.newest, ids=sorted(self.ids))


def reviewer(name: str | None, review_id: str, anonymous: bool = False) -> tuple[str, str | None]:
    """(handle, name): review sites show names, not handles; anonymous reviewers get one handle per review."""
    name = (name or "").strip()
    if anonymous or not name:
        # One shared "A Google user" customer would merge strangers' histories.
        return f"anonymous:{review_id}", name or None
    return name, name


def review_item(
    review_id: str,
    text: str,
    posted_at: datetime,
    rating: int | None,
    author: str | None,
    *,
    anonymous: bool = False,
    version: str | None = None,
    url: str | None = None,
    details: dict[str, Any] | None = None,
    existing_reply: str | None = None,
    answered_at: datetime | None = None,
) -> RawItem:
    """A review (or a `version` of it, a follow-up in its thread) as an item; an owner reply already there is noted."""
    handle, name = reviewer(author, review_id, anonymous)
    reply_to = {"review_id": review_id, **(details or {})}
    if existing_reply is not None:
        # Answered outside cx-inbox before we saw it: kept with a note, because our reply would replace that one.
        reply_to["existing_reply"] = existing_reply
    return RawItem(
        external_id=version or review_id,
        text=text,
        posted_at=posted_at,
        kind=Kind.REVIEW,
        author_handle=handle,
        author_name=name,
        thread_id=review_id,
        url=url,
        rating=rating,
        reply_to=reply_to,
        answered_at=answered_at,
    )


def with_token(request: Request, name: str, token: str | None) -> Request | None:
    """The same listing request with the vendor's page token parameter set; None when there is no next page."""
    return None if not token else (request[0], {**(request[1] or {}), name: token})


def next_number(request: Request, name: str, listed: int, per_page: int) -> Request | None:
    """The same listing request for the next numbered page; fewer entries than asked for was the last page."""
    path, params = request
    return None if listed < per_page else (path, {**(params or {}), name: (params or {})[name] + 1})


def join_text(*parts: str | None) -> str:
    """A review's title and body as one text."""
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


class ReviewConnector(HttpConnector[RS, ReviewCursor], Generic[RS, M]):
    """A review site: its listing walked newest first to the cursor, its reviews mapped, one owner reply per review.

    A subclass declares `api_url`, `review_model`, `listing` and the hooks: `authenticate`, `first_request`,
    `page`, `_item`, `reply`, and `owner_reply` (or `posted_reply` when the reply is not read from the review).
    """

    api_url: ClassVar[str]
    review_model: ClassVar[type[BaseModel]]  # from the class's second type argument
    listing: ClassVar[str] = "reviews"  # the listing's name in messages
    size_param: ClassVar[str] = ""  # the listing's page size parameter, so a check can list a single review

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A review site declares its review payload once, as `ReviewConnector[Settings, Review]`."""
        super().__init_subclass__(**kwargs)
        review = dict(enumerate(generic_arguments(cls, ReviewConnector))).get(1)
        if isinstance(review, type):
            cls.review_model = review

    def __init__(self, settings: RS, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.client = VendorClient(self.name, settings.api_url or self.api_url, headers=self.headers(settings))
        self.token = self.authenticate(settings)
        if (warning := self.poll_warning()) is not None:
            log.warning("%s: %s", self.name, warning)

    def headers(self, settings: RS) -> dict[str, str]:
        """Headers every request carries besides the token (an API key)."""
        return {}

    @abstractmethod
    def authenticate(self, settings: RS) -> BearerToken:
        """The bearer token requests carry."""

    @abstractmethod
    def first_request(self) -> Request:
        """The listing's first page, newest first."""

    @abstractmethod
    def page(self, data: Any, request: Request) -> tuple[list[Any], Request | None]:
        """A listing page's raw reviews, and the request for the next page (None: this is the last)."""

    @abstractmethod
    def _item(self, review: Any, walk: NewestFirst) -> RawItem | None:
        """The item for a new review (version), or None when the walk has it already."""

    async def posted_reply(self, target: ReplyTarget) -> tuple[str, str | None] | None:
        """(text, id) of the owner reply the review shows, if any: by default `owner_reply` of the review read again."""
        review = cast(M, await self.parsed(self.review_model, "GET", self.review_path(target), "review"))
        text = self.owner_reply(review)
        return None if text is None else (text, None)

    def review_path(self, target: ReplyTarget) -> str:
        """Where the API serves one review: by default under the listing's path."""
        return f"{self.first_request()[0]}/{self.review_id(target)}"

    def owner_reply(self, review: M) -> str | None:
        """The text of the owner reply a review shows; None when it shows none."""
        return None

    async def fetch(self, cursor: ReviewCursor | None) -> AsyncIterator[Page[ReviewCursor]]:
        """Pages of reviews new since the cursor; the cursor comes last, once every page is stored."""
        if (
            self.history_window is not None
            and cursor is not None
            and cursor.newest < self.clock() - self.history_window
        ):
            log.warning(
                "%s: the last review seen is from %s; %s only lists the last %d days, so reviews in between may be lost",
                self.name,
                cursor.newest.date().isoformat(),
                display_name(self.channel),
                self.history_window.days,
            )
        walk = NewestFirst(cursor, self.settings.first_poll_hours, now=self.clock())
        guard = PageGuard(f"{self.name}: {self.listing}")
        request: Request | None = self.first_request()
        while request is not None:
            path, params = request
            entries, following = self.page((await self.call("GET", path, params=params)).data, request)
            reviews = each_valid(self.review_model, entries, self.name)
            yield Page([item for review in reviews if (item := self._item(review, walk)) is not None])
            if walk.done or following is None:
                break
            # The same request twice is a loop, whatever the vendor's paging (tokens, page numbers, links).
            guard.next(f"{following[0]}?{sorted((following[1] or {}).items())}")
            request = following
        yield Page([], walk.cursor())

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """The review's owner reply, when it already says `text`."""
        posted = await self.posted_reply(target)
        if posted is not None and same_reply(posted[0], text):
            return SentReply(posted[1], self.reply_url(target))
        return None

    def poll_warning(self) -> str | None:
        """What the configured poll interval risks on this site (its quota, its listing window), said at start and by check."""
        return None

    def with_poll_warning(self, line: str) -> str:
        """A check's line, with the poll warning after it when there is one."""
        warning = self.poll_warning()
        return f"{line}. WARNING: {warning}" if warning else line

    def replied_at(self, at: datetime | None) -> datetime:
        """When an owner reply the review already shows was posted; an undated one: by now at the latest."""
        return at if at is not None else self.clock()

    def reply_url(self, target: ReplyTarget) -> str | None:
        """Where people see the reply, when the site has a page for it."""
        return None

    async def call(self, method: str, path: str, **options: Any) -> Response:
        """One request to the vendor with the token."""
        return await self.token.request(self.client, method, path, **options)

    async def list_one(self, model: type[P]) -> P:
        """The listing's first page with a single review, as `model`: what a check reads to prove access."""
        path, params = self.first_request()
        return await self.parsed(model, "GET", path, self.listing, params={**(params or {}), self.size_param: 1})

    async def parsed(self, model: type[P], method: str, path: str, what: str, **options: Any) -> P:
        """One request, its answer parsed as `model` (the wrong shape is a PermanentError)."""
        return page_of(model, (await self.call(method, path, **options)).data, f"{self.name}: {what}")

    @staticmethod
    def review_id(target: ReplyTarget) -> str:
        """The review a reply answers, quoted for a URL path."""
        return quote(str(target.reply_to.get("review_id") or target.thread_id), safe="")
