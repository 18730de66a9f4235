"""`facebook`: a Page's post comments and its Messenger conversations, pushed by Meta's webhooks and polled as the
safety net; replies as comment replies, Messenger messages within their window, or a private reply to a comment."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr

from inbox.connector import Clock, ItemUpdate, Kind, PermanentError, RawItem, ReplyTarget, SentReply, wall_clock
from inbox.connectors.kit.meta import GRAPH_URL, Change, GraphPage
from inbox.connectors.kit.meta_social import (
    PRIVATE,
    Found,
    Messaging,
    Sender,
    SocialConnector,
    SocialSettings,
    comment_item,
    epoch,
)
from inbox.connectors.kit.parse import (
    Digits,
    Number,
    OptionalId,
    OptionalText,
    Payload,
    Timestamp,
    one_of,
    page_of,
    valid,
)
from inbox.connectors.kit.text import same_reply

log = logging.getLogger(__name__)

WEB_URL = "https://www.facebook.com"
COMMENT_FIELDS = "id,message,from,created_time,parent{id},can_reply_privately"


class FacebookSettings(SocialSettings):
    """A Page: its id and a Page access token (pages_read_engagement, pages_manage_engagement, pages_messaging)."""

    type: str = "facebook"
    page_id: Digits
    page_access_token: SecretStr


class _Comment(Payload):
    """A comment as `/{post-id}/comments` lists it."""

    id: str = Field(min_length=1)
    created_time: Timestamp
    sender: Sender = Field(alias="from")
    message: OptionalText = None
    parent: Any = None
    can_reply_privately: bool | None = None


class _Post(Payload):
    id: str = Field(min_length=1)
    created_time: Timestamp
    updated_time: Timestamp | None = None


class _FeedComment(Payload):
    """The `value` of a `feed` change for a comment (item = comment)."""

    verb: str
    comment_id: str = Field(min_length=1)
    post_id: OptionalId = None
    parent_id: OptionalId = None
    sender: Sender = Field(alias="from")
    message: OptionalText = None
    created_time: Number
    can_reply_privately: bool | None = None


class FacebookConnector(SocialConnector[FacebookSettings]):
    """Webhooks `feed` (comments) and `messages` (Messenger); polls the Page's recent posts and conversations."""

    type = "facebook"

    def __init__(self, settings: FacebookSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.page = settings.page_id
        self.graph = self.make_graph(settings.api_url or GRAPH_URL, settings.page_access_token)
        self.messaging = Messaging(
            self.name, self.graph, self.page, "messenger", "pages_messaging", human_agent=settings.human_agent
        )

    # -- items ------------------------------------------------------------------------------------------------------

    def change_item(self, time: float | None, change: Change) -> Found | tuple[Found, ...]:
        """A comment added on the Page's posts; an edit (the item, in case it was missed, and its new text) or a
        removal of a stored one; the Page's own comments and other feed events (posts, reactions) are none of ours."""
        if change.field != "feed" or change.value.get("item") != "comment":
            return None
        if change.value.get("verb") == "remove":
            # A removal carries no message nor, sometimes, its author: the comment's id is all it needs.
            removed = change.value.get("comment_id")
            if not isinstance(removed, str) or not removed:
                return "feed comment removal without comment_id"
            log.info("%s: comment %s was removed on Facebook", self.name, removed)
            return ItemUpdate(removed, removed=True)
        value = one_of(_FeedComment, change.value)
        if isinstance(value, str):
            return f"feed comment: {value}"
        if value.verb not in ("add", "edited") or value.sender.id == self.page:
            return None
        item = self._comment(
            value.comment_id,
            value.parent_id,
            value.post_id,
            value.sender,
            value.message,
            epoch(value.created_time),
            value.can_reply_privately,
        )
        return (item, ItemUpdate(item.external_id, text=item.text)) if value.verb == "edited" else item

    def _comment(
        self,
        comment_id: str,
        parent: str | None,
        post: str | None,
        sender: Sender,
        message: str | None,
        at: datetime,
        private: bool | None,
    ) -> RawItem:
        # Facebook threads comments two deep: a reply's parent is the top-level comment, which replies go under.
        on_post = not parent or parent == post or parent.startswith(f"{self.page}_")
        return comment_item(
            comment_id=comment_id,
            root=comment_id if on_post or parent is None else parent,
            author=sender,
            handle=sender.id,
            text=message or "[a comment without text]",
            at=at,
            url=f"{WEB_URL}/{comment_id}",
            private=private is not False,
        )

    async def comments(self, since: datetime) -> AsyncIterator[list[RawItem]]:
        """Comments and replies (filter=stream) since `since` on posts commented on since then, newest posts first."""
        params = {"fields": "id,created_time,updated_time", "limit": self.settings.page_size}
        horizon = self.horizon(since)
        async with aclosing(self.graph.pages(f"{self.page}/posts", params, needs="pages_read_engagement")) as pages:
            async for posts in pages:
                parsed = [p for p in (valid(_Post, raw, self.name, "post") for raw in posts) if p is not None]
                for post in parsed:
                    # A comment moves its post's updated_time: a post untouched since then has nothing new.
                    if post.updated_time is None or post.updated_time >= since:
                        async for items in self._post_comments(post.id, since):
                            yield items
                if any(post.created_time < horizon for post in parsed):
                    return

    async def _post_comments(self, post: str, since: datetime) -> AsyncIterator[list[RawItem]]:
        params = {
            "fields": COMMENT_FIELDS,
            "filter": "stream",
            "order": "chronological",
            "since": int(since.timestamp()),
            "limit": self.settings.page_size,
        }
        async for data in self.graph.pages(f"{post}/comments", params, needs="pages_read_engagement"):
            items = []
            for raw in data:
                comment = valid(_Comment, raw, self.name, "comment")
                if comment is None or comment.sender.id == self.page or comment.created_time < since:
                    continue
                parent = comment.parent.get("id") if isinstance(comment.parent, dict) else None
                at = comment.created_time
                items.append(
                    self._comment(
                        comment.id, parent, post, comment.sender, comment.message, at, comment.can_reply_privately
                    )
                )
            yield items

    def conversations_path(self) -> str:
        """The Page's conversations."""
        return f"{self.page}/conversations"

    # -- replies ----------------------------------------------------------------------------------------------------

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A comment under the customer's top-level comment; a Messenger message; or a private reply (Send API)."""
        if target.kind == Kind.DM or target.mode == PRIVATE:
            return await self.messaging.send(target, text, f"{self.page}/messages", self.clock())
        root = str(target.reply_to.get("reply_on") or target.external_id)
        answer = await self.graph.call(
            "POST", f"{root}/comments", json_body={"message": text}, needs="pages_manage_engagement"
        )
        reply_id = answer.get("id") if isinstance(answer, dict) else None
        if not isinstance(reply_id, str) or not reply_id:
            raise PermanentError(f"{self.name}: the comment reply was answered without an id")
        return SentReply(reply_id, f"{WEB_URL}/{reply_id}")

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """The Page's comment with this text under the customer's, or its message in the Messenger conversation."""
        if target.kind == Kind.DM or target.mode == PRIVATE:
            return await self.messaging.find(target, text, self.conversations_path())
        root = str(target.reply_to.get("reply_on") or target.external_id)
        params = {"fields": "id,message,from,created_time", "filter": "stream", "limit": 100}
        answer = await self.graph.call("GET", f"{root}/comments", params=params, needs="pages_read_engagement")
        after = epoch(float(target.reply_to.get("at") or 0))
        for raw in page_of(GraphPage, answer, f"{self.name}: replies lookup").data:
            comment = valid(_Comment, raw, self.name, "comment")
            mine = comment is not None and comment.sender.id == self.page and comment.created_time >= after
            if comment and mine and same_reply(comment.message, text):
                return SentReply(comment.id, f"{WEB_URL}/{comment.id}")
        return None

    async def check(self) -> str:
        """The token reads the Page, its posts (pages_read_engagement) and its conversations (pages_messaging)."""
        page = await self.graph.call("GET", self.page, params={"fields": "id,name"})
        await self.graph.call("GET", f"{self.page}/posts", params={"limit": 1}, needs="pages_read_engagement")
        await self.graph.call(
            "GET", self.conversations_path(), params={"platform": "messenger", "limit": 1}, needs="pages_messaging"
        )
        name = page.get("name") if isinstance(page, dict) else None
        return f"Page {name or '?'} ({self.page}): posts and Messenger readable"
