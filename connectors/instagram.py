"""`instagram`: a professional account's comments, @mentions and DMs, pushed by Meta's webhooks, its recent media's
comments polled as the safety net; replies as comment replies, DMs within their window, or a private reply."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from pydantic import Field, SecretStr

from inbox.connector import Clock, Kind, PermanentError, Push, RawItem, ReplyTarget, TransientError, wall_clock
from inbox.connectors.kit.meta import Change
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
    listing,
)
from inbox.connectors.kit.parse import Digits, IfObject, OptionalId, OptionalText, Payload, Timestamp, one_of, valid

log = logging.getLogger(__name__)

INSTAGRAM_GRAPH_URL = "https://graph.instagram.com"
COMMENT = "id,text,timestamp,from,username,parent_id"
COMMENT_FIELDS = f"{COMMENT},replies{{{COMMENT}}}"


class InstagramSettings(SocialSettings):
    """A professional account's id and an access token (Instagram Login, or a Page token on graph.facebook.com)."""

    type: str = "instagram"
    ig_user_id: Digits
    access_token: SecretStr


class _Comment(Comment):
    """A comment as the media's comments (or a comment's replies) list it; `from` is missing on some."""

    at: Timestamp = Field(alias="timestamp")
    username: OptionalText = None
    parent_id: OptionalId = None
    replies: Annotated[dict[str, Any] | None, IfObject] = None
    media: Annotated[dict[str, Any] | None, IfObject] = None


class _Media(Parent):
    created: Timestamp = Field(alias="timestamp")
    comments_count: int | None = None

    def commented_since(self, since: datetime) -> bool:
        """A media without comments has none to read."""
        return self.comments_count != 0


class _WebhookComment(Payload):
    """The `value` of a `comments` change."""

    id: str = Field(min_length=1)
    sender: Sender = Field(alias="from")
    text: OptionalText = None
    parent_id: OptionalId = None
    media: Annotated[dict[str, Any] | None, IfObject] = None


class InstagramConnector(SocialConnector[InstagramSettings]):
    """Webhooks `comments`, `mentions` and `messages`; polls the account's recent media's comments and its DMs."""

    type = "instagram"
    parents_edge, parent_label, parent_model, comment_model = "media", "media", _Media, _Comment

    def __init__(self, settings: InstagramSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.account = settings.ig_user_id
        api_url = settings.api_url or INSTAGRAM_GRAPH_URL
        self.graph = self.make_graph(api_url, settings.access_token)
        # Instagram Login (graph.instagram.com) and Facebook Login (a Page token) name the permissions differently.
        prefix = "instagram_" if "graph.facebook.com" in api_url else "instagram_business_"
        self.needs_basic, self.needs_comments = f"{prefix}basic", f"{prefix}manage_comments"
        self.needs_posts, self.needs_reply = self.needs_basic, self.needs_comments
        self.messaging = Messaging(
            self.name,
            self.graph,
            self.account,
            "instagram",
            f"{prefix}manage_messages",
            human_agent=settings.human_agent,
        )
        # A `mentions` delivery names a comment but not its text: fetched once the delivery is stored (`complete`),
        # or by the next poll when Meta did not answer then.
        self._mentions: dict[str, str] = {}

    # -- items ------------------------------------------------------------------------------------------------------

    def change_item(self, time: float | None, change: Change) -> Found:
        """A comment on the account's media (its own skipped), or a mention to fetch on the next poll."""
        if change.field == "mentions":
            comment, media = change.value.get("comment_id"), change.value.get("media_id")
            if isinstance(comment, str | int) and isinstance(media, str | int):
                self._mentions[str(comment)] = str(media)
            else:
                log.info("%s: a mention in a caption or story is not answerable here; skipped", self.name)
            return None
        if change.field != "comments":
            return None
        value = one_of(_WebhookComment, change.value)
        if isinstance(value, str):
            return f"comment: {value}"
        if value.sender.id == self.account:
            return None
        at = epoch(time) if time else self.clock()  # the delivery carries no time of its own
        return self._item(value.id, value.parent_id, value.sender, value.text, at)

    async def complete(self, push: Push) -> None:
        """Mentions' text fetched at once (a `mentions` delivery names only the comment), then DM senders' names;
        a mention Meta does not answer now is fetched again by the next poll."""
        for comment, media in list(self._mentions.items()):
            item = await self._mention(comment, media)
            if item is not None:
                push.add(item, len(push.positions) + len(push.refused))
        await super().complete(push)

    def _item(
        self, comment_id: str, parent: str | None, sender: Sender, text: str | None, at: datetime, **extra: Any
    ) -> RawItem:
        kind = Kind.MENTION if extra else Kind.COMMENT
        return comment_item(
            comment_id=comment_id,
            root=parent or comment_id,  # Instagram answers replies under the top-level comment
            author=sender,
            handle=sender.username or sender.id,
            text=text or "[a comment without text]",
            at=at,
            private=kind == Kind.COMMENT,
            kind=kind,
            **extra,
        )

    def _comment(self, comment: _Comment, root: str | None, since: datetime) -> RawItem | None:
        sender = comment.sender or (Sender(id=comment.username) if comment.username else None)
        if sender is None or sender.id == self.account or comment.at < since:
            return None
        sender = sender.model_copy(update={"username": sender.username or comment.username})
        return self._item(comment.id, root or comment.parent_id, sender, comment.text, comment.at)

    async def comments(self, since: datetime) -> AsyncIterator[list[RawItem]]:
        """Mentions awaiting their text, then the comments (and replies) since `since` on recent media."""
        yield [m for m in [await self._mention(c, media) for c, media in list(self._mentions.items())] if m]
        async for items in super().comments(since):
            yield items

    def comment_params(self, since: datetime) -> dict[str, Any]:
        """Top-level comments with their replies nested (the edge has no time filter)."""
        return {"fields": COMMENT_FIELDS, "limit": self.settings.page_size}

    def comment_items(self, raw: Any, parent: str, since: datetime) -> list[RawItem]:
        """A listed comment and its replies, those of customers since `since`."""
        comment = valid(_Comment, raw, self.name, "comment")
        if comment is None:
            return []
        answers = [valid(_Comment, r, self.name, "comment reply") for r in listing(comment.replies).data]
        found = [self._comment(comment, None, since), *(self._comment(a, comment.id, since) for a in answers if a)]
        return [item for item in found if item is not None]

    async def _mention(self, comment_id: str, media: str) -> RawItem | None:
        fields = f"mentioned_comment.comment_id({comment_id}){{id,text,timestamp,username,from}}"
        try:
            answer = await self.graph.call("GET", self.account, params={"fields": fields}, needs=self.needs_basic)
        except TransientError:
            return None  # kept for the next poll
        except PermanentError as exc:
            log.warning("%s: skipped mention %s: %s", self.name, comment_id, exc)
            answer = None
        self._mentions.pop(comment_id, None)
        found = answer.get("mentioned_comment") if isinstance(answer, dict) else None
        comment = valid(_Comment, found, self.name, "mention") if found is not None else None
        if comment is None:
            return None
        sender = comment.sender or Sender(id=comment.username or "?")
        sender = sender.model_copy(update={"username": sender.username or comment.username})
        return self._item(comment.id, None, sender, comment.text, comment.at, media_id=media)

    # -- replies ----------------------------------------------------------------------------------------------------

    def comment_reply(self, target: ReplyTarget, text: str) -> tuple[str, dict[str, Any]]:
        """A reply under the customer's comment, or an answer to a mention on the mentions edge."""
        if target.kind == Kind.MENTION:
            body = {"comment_id": target.external_id, "media_id": str(target.reply_to.get("media_id")), "message": text}
            return f"{self.account}/mentions", body
        return f"{target.reply_to.get('reply_on') or target.external_id}/replies", {"message": text}

    def replies_lookup(self, target: ReplyTarget) -> tuple[str, dict[str, Any]] | None:
        """The replies under the customer's comment; a mention's answer is on another account's media, not listed."""
        if target.kind == Kind.MENTION:
            return None
        return f"{target.reply_to.get('reply_on') or target.external_id}/replies", {"fields": COMMENT}

    async def check(self) -> str:
        """The token reads the account, its media, a media's comments and its conversations."""
        me = await self.graph.call("GET", self.account, params={"fields": "id,username"})
        media = await self.graph.call("GET", f"{self.account}/media", params={"limit": 1}, needs=self.needs_basic)
        for first in listing(media).data[:1]:
            if isinstance(first, dict) and first.get("id"):
                path = f"{first['id']}/comments"
                await self.graph.call("GET", path, params={"limit": 1}, needs=self.needs_comments)
        await self.graph.call(
            "GET",
            self.conversations_path(),
            params={"platform": "instagram", "limit": 1},
            needs=self.messaging.needs,
        )
        username = me.get("username") if isinstance(me, dict) else None
        return f"@{username or '?'} ({self.account}): media, comments and DMs readable"
