"""`x`: mentions and DMs from the X (Twitter) API v2 through tweepy's AsyncClient; replies as reply posts or DMs."""

from __future__ import annotations

import html
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr
from tweepy.asynchronous import AsyncClient

from inbox.connector import (
    Clock,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RateBudget,
    RawItem,
    ReplyTarget,
    SentReply,
    wall_clock,
)
from inbox.connectors.kit.account import OwnAccount
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import AbsoluteUrl, LibraryTransport
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import (
    Digits,
    Entries,
    IfObject,
    OptionalId,
    OptionalText,
    Payload,
    Text,
    ZonedTimestamp,
    fitting,
    one_of,
    or_empty,
    page_of,
    valid,
)
from inbox.connectors.kit.text import same_reply

log = logging.getLogger(__name__)
# At DEBUG, tweepy logs each request's headers (the bearer token) and oauthlib each signature's
# parameters (the access token): secrets never reach a log, whatever the level.
logging.getLogger("tweepy.asynchronous.client").addFilter(
    lambda record: not str(record.msg).startswith("Making API request")
)
logging.getLogger("oauthlib.oauth1.rfc5849").addFilter(lambda record: record.levelno > logging.DEBUG)

# tweepy builds every URL on this host; the transport moves requests to `api_url`.
API_URL = "https://api.twitter.com"
TWEET_FIELDS = ["created_at", "author_id", "conversation_id", "in_reply_to_user_id", "referenced_tweets"]
USER_FIELDS = ["username", "name"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id"]
# The endpoints a poll reads (keys of the transport's budgets): their windows pace polls, the reply endpoints' do not.
POLL_ENDPOINTS = ("GET /2/users/:id/mentions", "GET /2/dm_events")
# twitter-text v3: these code points weigh 1, everything else 2; a link always counts 23.
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_WEIGHTLESS = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # joiners, variation selectors, skin tones
_URL = re.compile(r"https?://\S+")


class XSettings(ConnectorSettings):
    """OAuth 1.0a user-context keys of the brand's account (replies, DMs), an optional app bearer token for reads."""

    type: str = "x"
    api_url: AbsoluteUrl | None = None
    bearer_token: SecretStr | None = None
    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    # The brand's numeric account id (TOML users write `user_id = 783214`); looked up with GET /2/users/me when absent.
    user_id: Digits | None = None
    dms: bool = True
    page_size: int = Field(default=100, ge=5, le=100)
    # How far back the very first poll reaches; later polls continue from the cursor.
    first_poll_hours: float = Field(default=24, gt=0)
    # 280 for standard accounts; X Premium accounts may post longer replies.
    max_reply_chars: int = Field(default=280, gt=0)


class XCursor(BaseModel):
    """Newest mention and DM event ids seen (X ids grow with time); `start_time` bounds the reach until one is seen."""

    since_id: str | None = None
    dm_since_id: str | None = None
    start_time: datetime | None = None


class _Entry(Payload):
    """What paging and the reply search read of a post or DM event: its numeric id, and the rest when sent."""

    id: Digits
    text: OptionalText = None
    sender_id: OptionalText = None
    referenced_tweets: Entries = Field(default_factory=list)

    def refers(self, kind: str, post_id: str | None = None) -> bool:
        """Whether the post quotes, retweets or replies to (`kind`) another post (`post_id`, when given)."""
        refs = (r for r in self.referenced_tweets if isinstance(r, dict))
        return any(r.get("type") == kind and post_id in (None, r.get("id")) for r in refs)


class _Mention(_Entry):
    text: Text
    author_id: Text
    created_at: ZonedTimestamp
    conversation_id: OptionalText = None


class _DirectMessage(_Entry):
    text: Text
    sender_id: Text
    dm_conversation_id: Text
    created_at: ZonedTimestamp


class _User(Payload):
    username: OptionalText = None
    name: OptionalText = None


class _Includes(Payload):
    users: Entries = Field(default_factory=list)


class _Meta(Payload):
    next_token: OptionalText = None


class _Page(Payload):
    data: list[Any] = Field(default_factory=list)  # X leaves `data` out of an empty page
    includes: Annotated[_Includes | None, IfObject] = None
    meta: Annotated[_Meta | None, IfObject] = None

    def users(self) -> dict[str, dict[str, Any]]:
        """The expanded accounts by id."""
        listed = self.includes.users if self.includes else []
        return {str(u["id"]): u for u in listed if isinstance(u, dict) and "id" in u}

    def next_token(self) -> str | None:
        """The next page's token; None on the last page."""
        return self.meta.next_token if self.meta else None


class _Account(Payload):
    id: Digits
    username: Text
    name: Text


class _Created(Payload):
    id: OptionalId = None
    dm_event_id: OptionalId = None


class _Answer(Payload):
    data: Annotated[_Created | None, IfObject] = None


class XConnector(HttpConnector[XSettings, XCursor]):
    """Polls mentions (`since_id`) and DM events (newest first, down to the last seen id); replies in place."""

    type = "x"

    def __init__(self, settings: XSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.me = OwnAccount(self.name, "user_id", settings.user_id, self._me)
        self._transport = LibraryTransport(self.name, API_URL, settings.api_url or API_URL, refused_writes=True)
        secrets = ("consumer_key", "consumer_secret", "access_token", "access_token_secret", "bearer_token")
        keys = {
            key: value.get_secret_value() if (value := getattr(settings, key)) is not None else None for key in secrets
        }
        self._api = AsyncClient(**keys, return_type=dict)
        # Reads go app-only when a bearer token is configured (higher limits), else as the brand's user.
        self._read_as_user = settings.bearer_token is None

    async def fetch(self, cursor: XCursor | None) -> AsyncIterator[Page[XCursor]]:
        """Yield new mentions, then new DMs; each stream's cursor rides on its last page only (X pages newest first)."""
        reach = self.first_poll_start().replace(microsecond=0)
        start = cursor or XCursor(start_time=reach)
        own_id = await self.me.id()
        state = start.model_copy()
        async for page in self._mentions(own_id, start, state):
            yield page
        if self.settings.dms:
            async for page in self._dms(own_id, start, state):
                yield page

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A DM answers a DM; anything else gets a reply post under the customer's post."""
        if target.kind == Kind.DM:
            conversation = _dm_conversation(target)
            sent = await self._created(
                "POST dm message", self._api.create_direct_message(dm_conversation_id=conversation, text=text)
            )
            return SentReply(sent.dm_event_id, f"https://x.com/messages/{conversation}")
        weight = weighted_length(text)
        if weight > self.settings.max_reply_chars:
            raise PermanentError(
                f"X counts this reply as {weight} characters (links count 23, most non-Latin "
                f"characters and emoji count 2); the limit is {self.settings.max_reply_chars}"
            )
        sent = await self._created(
            "POST tweet", self._api.create_tweet(text=text, in_reply_to_tweet_id=target.external_id)
        )
        return SentReply(sent.id, _status_url(None, sent.id) if sent.id else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our reply on the platform: in the brand's timeline since the post, or in the DM conversation."""
        own_id = await self.me.id()
        if target.kind == Kind.DM:
            return await self._find_dm_reply(own_id, target, text)
        # The reply is newer than the post it answers, so since_id bounds the search.
        fields = {
            "since_id": target.external_id,
            "max_results": 100,
            "tweet_fields": ["referenced_tweets", "created_at"],
        }
        timeline = self._pages(
            "brand timeline",
            lambda token: self._api.get_users_tweets(
                own_id, **fields, pagination_token=token, user_auth=self._read_as_user
            ),
        )
        async for page, _ in timeline:
            for tweet in fitting(_Entry, page.data):
                if tweet.refers("replied_to", target.external_id) and same_reply(tweet.text, text):
                    return SentReply(tweet.id, _status_url(None, tweet.id))
        return None

    async def check(self) -> str:
        """GET /2/users/me with the user-context keys: the account replies are sent from."""
        me = await self.me.check(
            lambda me: (
                f"user_id {self.settings.user_id} is not the account these tokens belong to (@{me.username}, id {me.id})"
            )
        )
        reads = "app bearer token" if self.settings.bearer_token else "user context"
        dms = "mentions and DMs" if self.settings.dms else "mentions"
        return f"@{me.username} ({me.name}), user id {me.id}; reading {dms} with the {reads}"

    def poll_budgets(self) -> list[RateBudget]:
        """The mentions and DM events windows: X limits each endpoint on its own (10 mentions reads per 15 min on Basic)."""
        return [budget for key, budget in self._transport.budgets.items() if key in POLL_ENDPOINTS]

    async def _mentions(self, own_id: str, start: XCursor, state: XCursor) -> AsyncIterator[Page[XCursor]]:
        newest = start.since_id
        mentions = self._pages(
            "mentions",
            lambda token: self._api.get_users_mentions(
                own_id,
                since_id=start.since_id,
                start_time=start.start_time if start.since_id is None else None,
                max_results=self.settings.page_size,
                pagination_token=token,
                expansions=["author_id"],
                tweet_fields=TWEET_FIELDS,
                user_fields=USER_FIELDS,
                user_auth=self._read_as_user,
            ),
        )
        async for page, last in mentions:
            users, items = page.users(), []
            for tweet in page.data:
                if (entry := _entry(tweet)) is None:
                    log.warning("%s: skipped a mention without a numeric id: %.200r", self.name, tweet)
                    continue
                newest = _newer(newest, entry.id)
                if (item := self._tweet_item(tweet, users, own_id)) is not None:
                    items.append(item)
            # Only after the last page is everything down to since_id in; the id may move then.
            if last:
                state.since_id = newest
            yield Page(items, state.model_copy() if last else None)

    async def _dms(self, own_id: str, start: XCursor, state: XCursor) -> AsyncIterator[Page[XCursor]]:
        newest = start.dm_since_id
        # Per conversation, the brand's earliest DM seen so far: events come newest first, so it answers what comes next.
        answers: dict[str, datetime] = {}
        # GET /2/dm_events has no since_id: page back (newest first) until the last id we saw.
        events = self._pages(
            "DM events",
            lambda token: self._api.get_direct_message_events(
                event_types="MessageCreate",
                dm_event_fields=DM_FIELDS,
                expansions=["sender_id"],
                user_fields=USER_FIELDS,
                max_results=self.settings.page_size,
                pagination_token=token,
            ),
        )
        async for page, last in events:
            users, items, reached = page.users(), [], False
            for event in page.data:
                if (entry := _entry(event)) is None:
                    log.warning("%s: skipped a DM event without a numeric id: %.200r", self.name, event)
                    continue
                if _older(entry.id, start.dm_since_id):
                    reached = True
                    break
                item = self._dm_item(event, users, own_id)
                if start.dm_since_id is None and start.start_time and item and item.posted_at < start.start_time:
                    reached = True
                    break
                newest = _newer(newest, entry.id)
                if item is not None:
                    if item.from_brand:
                        answers[str(item.thread_id)] = item.posted_at
                    else:
                        item.answered_at = answers.get(str(item.thread_id))
                    items.append(item)
            if reached or last:
                state.dm_since_id = newest
                yield Page(items, state.model_copy())
                return
            yield Page(items)

    def _tweet_item(self, tweet: Any, users: dict[str, dict[str, Any]], own_id: str) -> RawItem | None:
        if (mention := valid(_Mention, tweet, self.name, "mention")) is None:
            return None
        author = or_empty(_User, users.get(mention.author_id))
        conversation = mention.conversation_id or mention.id
        return RawItem(
            external_id=mention.id,
            text=html.unescape(mention.text),  # v2 sends &, < and > as HTML entities
            posted_at=mention.created_at,
            kind=Kind.MENTION,
            author_handle=author.username or mention.author_id,
            author_name=author.name,
            # One thread per customer in a conversation: many customers answering one brand post
            # must not become one ticket that only the last of them gets a reply to.
            thread_id=f"{conversation}:{mention.author_id}",
            url=_status_url(author.username, mention.id),
            reply_to={
                "in_reply_to_tweet_id": mention.id,
                "author_id": mention.author_id,
                "conversation_id": conversation,
            },
            from_brand=mention.author_id == own_id,
            is_repost=mention.refers("retweeted"),
        )

    def _dm_item(self, event: Any, users: dict[str, dict[str, Any]], own_id: str) -> RawItem | None:
        if isinstance(event, dict) and event.get("event_type", "MessageCreate") != "MessageCreate":
            return None  # participants joining or leaving a group say nothing to answer
        if (dm := valid(_DirectMessage, event, self.name, "DM event")) is None:
            return None
        sender = or_empty(_User, users.get(dm.sender_id))
        return RawItem(
            external_id=dm.id,
            text=dm.text,
            posted_at=dm.created_at,
            kind=Kind.DM,
            author_handle=sender.username or dm.sender_id,
            author_name=sender.name,
            thread_id=dm.dm_conversation_id,
            url=f"https://x.com/messages/{dm.dm_conversation_id}",
            reply_to={"dm_conversation_id": dm.dm_conversation_id, "sender_id": dm.sender_id},
            from_brand=dm.sender_id == own_id,
        )

    async def _find_dm_reply(self, own_id: str, target: ReplyTarget, text: str) -> SentReply | None:
        conversation = _dm_conversation(target)
        events = self._pages(
            "DM conversation",
            lambda token: self._api.get_direct_message_events(
                dm_conversation_id=conversation, dm_event_fields=DM_FIELDS, max_results=100, pagination_token=token
            ),
        )
        async for page, _ in events:
            for event in fitting(_Entry, page.data):
                if _older(event.id, target.external_id):
                    return None  # older than the DM we answer: our reply cannot be further back
                if event.sender_id == own_id and same_reply(event.text, text):
                    return SentReply(event.id, f"https://x.com/messages/{conversation}")
        return None

    async def _me(self) -> _Account:
        body = await self._call("GET users/me", self._api.get_me(user_fields=USER_FIELDS))
        return page_of(_Account, body.get("data") if isinstance(body, dict) else body, f"{self.name}: GET /2/users/me")

    def _pages(self, what: str, request: Callable[[str | None], Awaitable[Any]]) -> AsyncIterator[tuple[_Page, bool]]:
        async def page(token: str | None) -> _Page:
            return page_of(_Page, await self._call(f"GET {what}", request(token)), f"{self.name}: {what}")

        return paged(f"{self.name}: {what}", page, _Page.next_token)

    async def _created(self, what: str, request: Awaitable[Any]) -> _Created:
        return page_of(_Answer, await self._call(what, request), f"{self.name}: {what}").data or _Created()

    async def _call(self, what: str, request: Awaitable[Any]) -> Any:
        # tweepy uses `AsyncClient.session` when set (its documented attribute) and opens one per request otherwise.
        self._api.session = self._transport.session()
        return await self._transport.call(what, request)


def weighted_length(text: str) -> int:
    """The length X counts for a post: links 23, most non-Latin characters and emoji 2 (twitter-text v3)."""
    text = _URL.sub("x" * 23, unicodedata.normalize("NFC", text))
    weights = (
        0 if ord(c) in _WEIGHTLESS else 1 if any(low <= ord(c) <= high for low, high in _LIGHT_RANGES) else 2
        for c in text
    )
    return sum(weights)


def _entry(value: Any) -> _Entry | None:
    entry = one_of(_Entry, value)
    return entry if isinstance(entry, _Entry) else None


def _older(post_id: str, than: str | None) -> bool:
    return than is not None and int(post_id) <= int(than)


def _newer(current: str | None, candidate: str) -> str:
    return candidate if current is None or int(candidate) > int(current) else current


def _status_url(username: str | None, tweet_id: str) -> str:
    return f"https://x.com/{username}/status/{tweet_id}" if username else f"https://x.com/i/web/status/{tweet_id}"


def _dm_conversation(target: ReplyTarget) -> str:
    conversation = target.reply_to.get("dm_conversation_id")
    if not isinstance(conversation, str) or not conversation:
        raise PermanentError(f"DM {target.external_id} has no dm_conversation_id to answer in")
    return conversation
