"""`facebook`: a Page's post comments and its Messenger conversations, pushed by Meta's webhooks and polled as the
safety net; replies as comment replies, Messenger messages within their window, or a private reply to a comment."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr

from inbox.connector import Clock, ItemUpdate, RawItem, ReplyTarget, wall_clock
from inbox.connectors.kit.meta import GRAPH_URL, Change
from inbox.connectors.kit.meta_social import (
    Comment,
    Found,
    Messaging,
    Parent,
    Sender,
    SocialConnector,
    SocialSettings,
    comment_item,
    epoch,
)
from inbox.connectors.kit.parse import Digits, Number, OptionalId, OptionalText, Payload, Timestamp, one_of, valid

log = logging.getLogger(__name__)

WEB_URL = "https://www.facebook.com"
COMMENT_FIELDS = "id,message,from,created_time,parent{id},can_reply_privately"


class FacebookSettings(SocialSettings):
    """A Page: its id and a Page access token (pages_read_engagement, pages_manage_engagement, pages_messaging)."""

    type: str = "facebook"
    page_id: Digits
    page_access_token: SecretStr


class _Comment(Comment):
    """A comment as `/{post-id}/comments` lists it."""

    at: Timestamp = Field(alias="created_time")
    text: OptionalText = Field(default=None, alias="message")
    sender: Sender = Field(alias="from")
    parent: Any = None
    can_reply_privately: bool | None = None


class _Post(Parent):
    created: Timestamp = Field(alias="created_time")
    updated_time: Timestamp | None = None

    def commented_since(self, since: datetime) -> bool:
        """A comment moves its post's updated_time: a post untouched since then has nothing new."""
        return self.updated_time is None or self.updated_time >= since


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
    parents_edge, parent_label, parent_model, comment_model = "posts", "post", _Post, _Comment

    def __init__(self, settings: FacebookSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.account = settings.page_id
        self.graph = self.make_graph(settings.api_url or GRAPH_URL, settings.page_access_token)
        self.needs_posts = self.needs_comments = "pages_read_engagement"
        self.needs_reply = "pages_manage_engagement"
        self.messaging = Messaging(
            self.name, self.graph, self.account, "messenger", "pages_messaging", human_agent=settings.human_agent
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
        if value.verb not in ("add", "edited") or value.sender.id == self.account:
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
        on_post = not parent or parent == post or parent.startswith(f"{self.account}_")
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

    def comment_params(self, since: datetime) -> dict[str, Any]:
        """Comments and replies (filter=stream) since `since`, oldest first."""
        return {
            "fields": COMMENT_FIELDS,
            "filter": "stream",
            "order": "chronological",
            "since": int(since.timestamp()),
            "limit": self.settings.page_size,
        }

    def comment_items(self, raw: Any, parent: str, since: datetime) -> list[RawItem]:
        """A customer's comment since `since` on the post `parent`."""
        comment = valid(_Comment, raw, self.name, "comment")
        if comment is None or comment.sender.id == self.account or comment.at < since:
            return []
        on = comment.parent.get("id") if isinstance(comment.parent, dict) else None
        return [
            self._comment(comment.id, on, parent, comment.sender, comment.text, comment.at, comment.can_reply_privately)
        ]

    # -- replies ----------------------------------------------------------------------------------------------------

    def comment_reply(self, target: ReplyTarget, text: str) -> tuple[str, dict[str, Any]]:
        """A comment under the customer's top-level comment."""
        return f"{target.reply_to.get('reply_on') or target.external_id}/comments", {"message": text}

    def replies_lookup(self, target: ReplyTarget) -> tuple[str, dict[str, Any]]:
        """The comments under the customer's top-level comment."""
        params = {"fields": "id,message,from,created_time", "filter": "stream", "limit": 100}
        return f"{target.reply_to.get('reply_on') or target.external_id}/comments", params

    def comment_url(self, comment_id: str) -> str:
        """The comment on facebook.com."""
        return f"{WEB_URL}/{comment_id}"

    async def check(self) -> str:
        """The token reads the Page, its posts (pages_read_engagement) and its conversations (pages_messaging)."""
        page = await self.graph.call("GET", self.account, params={"fields": "id,name"})
        await self.graph.call("GET", f"{self.account}/posts", params={"limit": 1}, needs="pages_read_engagement")
        await self.graph.call(
            "GET", self.conversations_path(), params={"platform": "messenger", "limit": 1}, needs="pages_messaging"
        )
        name = page.get("name") if isinstance(page, dict) else None
        return f"Page {name or '?'} ({self.account}): posts and Messenger readable"
