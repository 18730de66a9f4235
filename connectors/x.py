"""`x`: mentions and DMs from the X (Twitter) API v2 through tweepy's AsyncClient; replies as reply posts or DMs."""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, SecretStr

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
from inbox.connectors.kit.account import OwnAccount
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import AbsoluteUrl
from inbox.connectors.kit.parse import Digits, fitting, or_empty, valid
from inbox.connectors.kit.text import same_reply
from inbox.connectors.kit.xapi import (
    Account,
    DirectMessage,
    Entry,
    Mention,
    User,
    XApi,
    newer,
    numbered,
    older,
    weighted_length,
)

log = logging.getLogger(__name__)

SECRETS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret", "bearer_token")


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


class XConnector(HttpConnector[XSettings, XCursor]):
    """Polls mentions (`since_id`) and DM events (newest first, down to the last seen id); replies in place."""

    type = "x"

    def __init__(self, settings: XSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.me = OwnAccount(self.name, "user_id", settings.user_id, self._me)
        self.api = XApi(self.name, settings.api_url, {key: getattr(settings, key) for key in SECRETS})

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
            sent = await self.api.send_dm(conversation, text)
            return SentReply(sent.dm_event_id, f"https://x.com/messages/{conversation}")
        weight = weighted_length(text)
        if weight > self.settings.max_reply_chars:
            raise PermanentError(
                f"X counts this reply as {weight} characters (links count 23, most non-Latin "
                f"characters and emoji count 2); the limit is {self.settings.max_reply_chars}"
            )
        sent = await self.api.post(text, target.external_id)
        return SentReply(sent.id, _status_url(None, sent.id) if sent.id else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our reply on the platform: in the brand's timeline since the post, or in the DM conversation."""
        own_id = await self.me.id()
        if target.kind == Kind.DM:
            return await self._find_dm_reply(own_id, target, text)
        # The reply is newer than the post it answers, so since_id bounds the search.
        async for page, _ in self.api.timeline(own_id, target.external_id):
            for tweet in fitting(Entry, page.data):
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

    async def _mentions(self, own_id: str, start: XCursor, state: XCursor) -> AsyncIterator[Page[XCursor]]:
        newest = start.since_id
        since = start.start_time if start.since_id is None else None
        mentions = self.api.mentions(own_id, start.since_id, since, self.settings.page_size)
        async for page, last in mentions:
            users, items = page.users(), []
            for tweet in page.data:
                if (entry := numbered(tweet)) is None:
                    log.warning("%s: skipped a mention without a numeric id: %.200r", self.name, tweet)
                    continue
                newest = newer(newest, entry.id)
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
        events = self.api.dm_events(self.settings.page_size)
        async for page, last in events:
            users, items, reached = page.users(), [], False
            for event in page.data:
                if (entry := numbered(event)) is None:
                    log.warning("%s: skipped a DM event without a numeric id: %.200r", self.name, event)
                    continue
                if older(entry.id, start.dm_since_id):
                    reached = True
                    break
                item = self._dm_item(event, users, own_id)
                if start.dm_since_id is None and start.start_time and item and item.posted_at < start.start_time:
                    reached = True
                    break
                newest = newer(newest, entry.id)
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
        if (mention := valid(Mention, tweet, self.name, "mention")) is None:
            return None
        author = or_empty(User, users.get(mention.author_id))
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
        if (dm := valid(DirectMessage, event, self.name, "DM event")) is None:
            return None
        sender = or_empty(User, users.get(dm.sender_id))
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
        events = self.api.conversation(conversation)
        async for page, _ in events:
            for event in fitting(Entry, page.data):
                if older(event.id, target.external_id):
                    return None  # older than the DM we answer: our reply cannot be further back
                if event.sender_id == own_id and same_reply(event.text, text):
                    return SentReply(event.id, f"https://x.com/messages/{conversation}")
        return None

    async def _me(self) -> Account:
        return await self.api.me()


def _status_url(username: str | None, tweet_id: str) -> str:
    return f"https://x.com/{username}/status/{tweet_id}" if username else f"https://x.com/i/web/status/{tweet_id}"


def _dm_conversation(target: ReplyTarget) -> str:
    conversation = target.reply_to.get("dm_conversation_id")
    if not isinstance(conversation, str) or not conversation:
        raise PermanentError(f"DM {target.external_id} has no dm_conversation_id to answer in")
    return conversation
