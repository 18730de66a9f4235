"""`reddit`: the account's inbox (mentions, comment replies, private messages) and brand talk in chosen subreddits."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from inbox.connector import (
    Clock,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RawItem,
    ReplyTarget,
    SentReply,
    wall_clock,
)
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import fitting, valid
from inbox.connectors.kit.redditapi import Child, Children, Node, RedditApi, Thing, comment_id, name_of, stamp_of
from inbox.connectors.kit.text import any_word, same_reply
from inbox.connectors.kit.threads import ThreadCache

log = logging.getLogger(__name__)

WEB_URL = "https://www.reddit.com"
# How far up a comment chain we look for the start of a conversation.
MAX_THREAD_DEPTH = 8


class RedditSettings(ConnectorSettings):
    """A "script" app of the brand's account: client id and secret, the account's username and password."""

    type: str = "reddit"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    username: str = Field(min_length=1)
    password: SecretStr
    # Reddit asks for "<platform>:<app id>:<version> (by /u/<username>)" and throttles generic agents.
    user_agent: str = Field(min_length=1)
    # The token host; unset: www.reddit.com, or api_url itself when api_url points elsewhere (a proxy or a fake).
    auth_url: str | None = None
    # Subreddits watched for posts and comments naming the brand (without "r/").
    subreddits: list[str] = Field(default_factory=list)
    # Words that name the brand in those subreddits (case-insensitive, whole words).
    brand_terms: list[str] = Field(default_factory=list)
    # How far back the very first poll looks.
    first_poll_hours: float = Field(default=24, ge=0)
    max_reply_chars: int = Field(default=10_000, gt=0)
    page_size: int = Field(default=100, ge=1, le=100)

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [re.sub(r"^/?r/", "", v.strip()) for v in value]
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_]{2,21}", n)]
        if bad:
            raise ValueError(f"not subreddit names: {bad}")
        return names

    @model_validator(mode="after")
    def _terms(self) -> RedditSettings:
        if self.subreddits and not [t for t in self.brand_terms if t.strip()]:
            raise ValueError("subreddits need brand_terms: the words that name the brand there")
        return self


class Mark(BaseModel):
    """The newest thing seen in one listing."""

    name: str
    created_utc: float


class RedditCursor(BaseModel):
    """Newest thing seen per listing: "inbox", "posts", "comments"."""

    marks: dict[str, Mark] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Source:
    key: str
    path: str
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Known:
    thread: str
    ours: bool


class RedditConnector(HttpConnector[RedditSettings, RedditCursor]):
    """Polls the inbox and the watched subreddits with an OAuth2 password-grant token; replies with /api/comment."""

    type = "reddit"

    def __init__(self, settings: RedditSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        credentials = (settings.client_id, settings.client_secret), (settings.username, settings.password)
        self.client = RedditApi(settings.name, settings.api_url, settings.auth_url, settings.user_agent, *credentials)
        self.auth = self.client.auth  # the token host's client, closed with the connector
        self._me = settings.username.lower()
        self._mention = re.compile(rf"(?<![\w/])/?u/{re.escape(settings.username)}\b", re.IGNORECASE)
        self._brand = any_word(settings.brand_terms)
        self._threads: ThreadCache[_Known] = ThreadCache()

    # -- fetch ------------------------------------------------------------------------------------------------------

    async def fetch(self, cursor: RedditCursor | None) -> AsyncIterator[Page[RedditCursor]]:
        """Each listing walked back from the newest thing to its mark; its new mark is committed once it is done."""
        marks = dict(cursor.marks) if cursor else {}
        for source in self._sources():
            mark = marks.get(source.key)
            newest: Mark | None = None
            async for things, top in self._walk(source, mark):
                newest = newest or top
                yield Page(await self._items(things, source))
            # Never backwards: with the mark's thing deleted, the newest thing left may be older than it.
            if newest is not None and newest != mark and (mark is None or newest.created_utc >= mark.created_utc):
                marks[source.key] = newest
                yield Page([], RedditCursor(marks=dict(marks)))

    def _sources(self) -> list[_Source]:
        sources = [_Source("inbox", "/message/inbox", {"mark": "false"})]
        if self.settings.subreddits:
            subs = "+".join(self.settings.subreddits)
            sources += [_Source("posts", f"/r/{subs}/new", {}), _Source("comments", f"/r/{subs}/comments", {})]
        return sources

    async def _walk(self, source: _Source, mark: Mark | None) -> AsyncIterator[tuple[list[Any], Mark | None]]:
        """Pages of things newer than `mark` (newest first), each with the newest thing of its page."""
        # Listings are newest first; `after` pages back. `before` would page forward but answers nothing once the
        # thing it names is deleted, so the walk goes back to the mark (by name, or by time if it is gone).
        horizon = mark.created_utc if mark else self.first_poll_start().timestamp()
        limit = {"limit": str(self.settings.page_size)}

        async def page(after: str | None) -> Children:
            return await self.client.listing(
                source.path, {**source.params, **limit, **({"after": after} if after else {})}
            )

        async for listing, last in paged(f"{self.name}: {source.path}", page, lambda listing: listing.after):
            fresh, reached, passed = [], False, False
            stamps = [_mark(child) for child in listing.children]
            for child, stamp in zip(listing.children, stamps, strict=True):
                if passed or (stamp is not None and mark is not None and stamp.name == mark.name):
                    reached = passed = True  # the mark itself, and everything listed after it, was seen
                elif stamp is not None and stamp.created_utc < horizon:
                    reached = True  # older than the mark (it may be deleted); the page is scanned in case of disorder
                else:
                    fresh.append(child)
            yield fresh, next((m for m in stamps if m is not None), None)
            if reached or last or not listing.children:
                return

    async def _items(self, things: list[Any], source: _Source) -> list[RawItem]:
        items = []
        # Oldest first, so a chain inside one page finds its parent already mapped.
        for thing in reversed(things):
            parsed = valid(Thing, thing, self.name, f"{source.key} thing", name_of(thing))
            if parsed is not None and (item := await self._item(parsed, source)) is not None:
                items.append(item)
        return items

    async def _item(self, thing: Thing, source: _Source) -> RawItem | None:
        data, kind = thing.data, thing.kind
        if kind == "t4":
            body, first = data.body or "", data.first_message_name
            text = f"{data.subject}\n\n{body}" if data.subject and not first else body
            url: str | None = f"{WEB_URL}/message/messages/{data.id or data.name[3:]}"
            thread = first or data.name
            item_kind = Kind.DM
        elif kind in ("t1", "t3"):
            text = (data.body or "") if kind == "t1" else "\n\n".join(p for p in (data.title, data.selftext) if p)
            if source.key != "inbox" and not self._names_brand(text):
                return None
            thread = await self._thread_of(data) if kind == "t1" else data.name
            link = (data.context or data.permalink) if kind == "t1" else data.permalink
            url = f"{WEB_URL}{link}" if link else None
            item_kind = Kind.COMMENT if kind == "t1" and data.type != "username_mention" else Kind.MENTION
        else:
            log.warning("%s: skipped %s thing %r: unknown kind %r", self.name, source.key, data.name[:40], kind)
            return None
        mine = data.author.lower() == self._me
        self._remember(data.name, thread, ours=mine)
        return RawItem(
            external_id=data.name,
            text=text,
            posted_at=data.created_utc,
            kind=item_kind,
            author_handle=data.author,
            thread_id=thread,
            url=url,
            reply_to={"thing_id": data.name, "kind": kind, "subreddit": data.subreddit, "parent_id": data.parent_id},
            from_brand=mine,
            is_repost=bool(data.crosspost_parent),
        )

    def _names_brand(self, text: str | None) -> bool:
        return bool(self._brand and self._brand.search(text or "")) or bool(self._mention.search(text or ""))

    # -- threads ----------------------------------------------------------------------------------------------------

    async def _thread_of(self, data: Node) -> str:
        """A comment's conversation: the topmost customer comment of the unbroken chain around us."""
        root, node = data.name, data
        for _ in range(MAX_THREAD_DEPTH):
            parent = comment_id(node.parent_id)
            if parent is None:
                break
            if parent in self._threads:
                return self._threads[parent].thread  # a stored item or our reply: join its conversation
            above = await self.client.info(parent)
            if above is None:
                break
            if self._is_me(above):
                node = above  # our comment: the conversation goes on above it
                continue
            if self._names_brand(above.body):
                root, node = above.name, above
                continue
            # A customer comment that does not name us belongs to the conversation only when it answers us.
            grand = comment_id(above.parent_id)
            if grand is None:
                break
            if grand in self._threads:
                known = self._threads[grand]
                if known.ours:
                    return known.thread
                break
            grand_thing = await self.client.info(grand)
            if grand_thing is None or not self._is_me(grand_thing):
                break
            root, node = above.name, grand_thing
        return root

    def _is_me(self, data: Node) -> bool:
        return (data.author or "").lower() == self._me

    def _remember(self, name: str, thread: str, *, ours: bool) -> None:
        self._threads.remember(name, _Known(thread, ours))

    # -- replies ----------------------------------------------------------------------------------------------------

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A comment under the comment or post, or a message in the private conversation (both are /api/comment)."""
        return self._ours(await self.client.comment(target.external_id, text), target)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our recent comments (or sent messages, for a message) answering the target with this text."""
        path = "/message/sent" if target.external_id.startswith("t4_") else f"/user/{self.settings.username}/comments"
        params = {"limit": "100"} if path == "/message/sent" else {"limit": "100", "sort": "new"}
        for child in fitting(Child, (await self.client.listing(path, params)).children):
            if (
                child.data.parent_id == target.external_id
                and self._is_me(child.data)
                and same_reply(child.data.body, text)
            ):
                return self._ours(child.data, target)
        return None

    def _ours(self, data: Node, target: ReplyTarget) -> SentReply:
        self._remember(data.name, target.thread_id, ours=True)
        return SentReply(data.name, f"{WEB_URL}{data.permalink}" if data.permalink else None)

    # -- auth -------------------------------------------------------------------------------------------------------

    async def check(self) -> str:
        """A token from the password grant, then /api/v1/me."""
        me = await self.client.me()
        if me.name.lower() != self._me:
            raise PermanentError(f"{self.name}: the token is for u/{me.name}, not u/{self.settings.username}")
        return f"u/{me.name} via {urlsplit(self.client.base_url).netloc}"


def _mark(thing: Any) -> Mark | None:
    found = stamp_of(thing)
    return None if found is None else Mark(name=found.name, created_utc=found.created_utc)
