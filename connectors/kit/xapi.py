"""The X API v2 as a client over tweepy: payload shapes, the calls a connector makes (the account, mentions, DM events,
the brand's timeline, posts and DMs sent), paging, X's ids and the twitter-text weights; no mapping."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, SecretStr
from tweepy.asynchronous import AsyncClient

from inbox.connectors.kit.http import LibraryTransport
from inbox.connectors.kit.parse import (
    Digits,
    Entries,
    IfObject,
    OptionalId,
    OptionalText,
    Payload,
    Text,
    ZonedTimestamp,
    one_of,
    page_of,
)

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
# The endpoints a poll reads (keys of the transport's budgets): X limits each endpoint on its own (10 mentions reads
# per 15 min on Basic); their windows pace polls, the reply endpoints' do not.
POLL_ENDPOINTS = ("GET /2/users/:id/mentions", "GET /2/dm_events")
# twitter-text v3: these code points weigh 1, everything else 2; a link always counts 23.
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_WEIGHTLESS = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # joiners, variation selectors, skin tones
_URL = re.compile(r"https?://\S+")


class Entry(Payload):
    """What paging and the reply search read of a post or DM event: its numeric id, and the rest when sent."""

    id: Digits
    text: OptionalText = None
    sender_id: OptionalText = None
    referenced_tweets: Entries = Field(default_factory=list)

    def refers(self, kind: str, post_id: str | None = None) -> bool:
        """Whether the post quotes, retweets or replies to (`kind`) another post (`post_id`, when given)."""
        refs = (r for r in self.referenced_tweets if isinstance(r, dict))
        return any(r.get("type") == kind and post_id in (None, r.get("id")) for r in refs)


class Mention(Entry):
    """A post that mentions the brand, as an item needs it."""

    text: Text
    author_id: Text
    created_at: ZonedTimestamp
    conversation_id: OptionalText = None


class DirectMessage(Entry):
    """A DM event of type MessageCreate, as an item needs it."""

    text: Text
    sender_id: Text
    dm_conversation_id: Text
    created_at: ZonedTimestamp


class User(Payload):
    """An expanded account: only decorates an item."""

    username: OptionalText = None
    name: OptionalText = None


class _Includes(Payload):
    users: Entries = Field(default_factory=list)


class _Meta(Payload):
    next_token: OptionalText = None


class Page(Payload):
    """A listing page: its raw entries, the accounts they expand, the next page's token."""

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


class Account(Payload):
    """The account the user-context keys belong to."""

    id: Digits
    username: Text
    name: Text


class Created(Payload):
    """What a post or a DM sent is answered: its id, when X gives it."""

    id: OptionalId = None
    dm_event_id: OptionalId = None


class _Answer(Payload):
    data: Annotated[Created | None, IfObject] = None


Listing = AsyncIterator[tuple[Page, bool]]


class XApi(LibraryTransport):
    """tweepy's AsyncClient on the kit's transport: OAuth 1.0a user context, an app bearer token for reads if given."""

    def __init__(self, name: str, api_url: str | None, keys: dict[str, SecretStr | None]) -> None:
        plain = {key: value.get_secret_value() if value is not None else None for key, value in keys.items()}
        api = AsyncClient(**plain, return_type=dict)
        super().__init__(name, API_URL, api_url or API_URL, refused_writes=True, polled=POLL_ENDPOINTS, client=api)
        self.api = api
        # Reads go app-only when a bearer token is configured (higher limits), else as the brand's user.
        self.as_user = keys.get("bearer_token") is None

    async def me(self) -> Account:
        """GET /2/users/me: the account of the user-context keys."""
        body = await self.call("GET users/me", self.api.get_me(user_fields=USER_FIELDS))
        return page_of(Account, body.get("data") if isinstance(body, dict) else body, f"{self.name}: GET /2/users/me")

    def mentions(self, user_id: str, since_id: str | None, start_time: datetime | None, size: int) -> Listing:
        """The account's mentions newer than `since_id` (or from `start_time`), newest first, with their authors."""
        return self._pages(
            "mentions",
            lambda token: self.api.get_users_mentions(
                user_id,
                since_id=since_id,
                start_time=start_time,
                max_results=size,
                pagination_token=token,
                expansions=["author_id"],
                tweet_fields=TWEET_FIELDS,
                user_fields=USER_FIELDS,
                user_auth=self.as_user,
            ),
        )

    def dm_events(self, size: int) -> Listing:
        """The account's DM events (message creates), newest first, with their senders; there is no since_id."""
        return self._pages(
            "DM events",
            lambda token: self.api.get_direct_message_events(
                event_types="MessageCreate",
                dm_event_fields=DM_FIELDS,
                expansions=["sender_id"],
                user_fields=USER_FIELDS,
                max_results=size,
                pagination_token=token,
            ),
        )

    def conversation(self, conversation: str) -> Listing:
        """The events of one DM conversation, newest first."""
        return self._pages(
            "DM conversation",
            lambda token: self.api.get_direct_message_events(
                dm_conversation_id=conversation, dm_event_fields=DM_FIELDS, max_results=100, pagination_token=token
            ),
        )

    def timeline(self, user_id: str, since_id: str) -> Listing:
        """The account's own posts newer than `since_id`, with what they reply to."""
        fields = {"since_id": since_id, "max_results": 100, "tweet_fields": ["referenced_tweets", "created_at"]}
        return self._pages(
            "brand timeline",
            lambda token: self.api.get_users_tweets(user_id, **fields, pagination_token=token, user_auth=self.as_user),
        )

    async def post(self, text: str, in_reply_to: str) -> Created:
        """A post in reply to another."""
        return await self._created("POST tweet", self.api.create_tweet(text=text, in_reply_to_tweet_id=in_reply_to))

    async def send_dm(self, conversation: str, text: str) -> Created:
        """A DM in a conversation."""
        request = self.api.create_direct_message(dm_conversation_id=conversation, text=text)
        return await self._created("POST dm message", request)

    def _pages(self, what: str, request: Callable[[str | None], Awaitable[Any]]) -> Listing:
        return self.pages(Page, what, request, Page.next_token)

    async def _created(self, what: str, request: Awaitable[Any]) -> Created:
        return (await self.call_as(_Answer, what, request)).data or Created()


def weighted_length(text: str) -> int:
    """The length X counts for a post: links 23, most non-Latin characters and emoji 2 (twitter-text v3)."""
    text = _URL.sub("x" * 23, unicodedata.normalize("NFC", text))
    weights = (
        0 if ord(c) in _WEIGHTLESS else 1 if any(low <= ord(c) <= high for low, high in _LIGHT_RANGES) else 2
        for c in text
    )
    return sum(weights)


def numbered(value: Any) -> Entry | None:
    """A post or DM event with a numeric id, or None."""
    parsed = one_of(Entry, value)
    return parsed if isinstance(parsed, Entry) else None


def older(post_id: str, than: str | None) -> bool:
    """Whether an id is at or below another (X's ids grow with time)."""
    return than is not None and int(post_id) <= int(than)


def newer(current: str | None, candidate: str) -> str:
    """The newer of two ids."""
    return candidate if current is None or int(candidate) > int(current) else current
