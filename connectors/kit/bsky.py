"""The Bluesky app's API as a client: the app.bsky and chat.bsky lexicons over an `XrpcAccount`, in the platform's terms.

What the connector reads and sends, without mapping any of it: the payload shapes (only the fields an item needs),
notifications and DMs read back to a watermark, a post's ancestors and replies, profiles, posts and messages sent with
their facets, the lexicons' text limits and bsky.app addresses. The chat service is reached through the PDS, which
forwards calls carrying the `atproto-proxy` header.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from atproto_client import models
from atproto_client.utils import facet_detection
from pydantic import Field

from inbox.connector import ConnectorError, PermanentError
from inbox.connectors.kit.parse import Entries, Name, OptionalText, Payload, Text, Timestamp, one_of, valid
from inbox.connectors.kit.watermark import Mark, ReadBack, Seen, time_of
from inbox.connectors.kit.xrpc import Paged, XrpcAccount, graphemes

log = logging.getLogger(__name__)

CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
MESSAGE_VIEW = "chat.bsky.convo.defs#messageView"  # the other views are deleted and system messages
PROFILES_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class StringLimit:
    """A lexicon string's limits: maxGraphemes, and maxLength in UTF-8 bytes."""

    graphemes: int
    bytes: int

    def check(self, text: str, what: str) -> None:
        """Refuse a text over either limit, before any call."""
        count, size = graphemes(text), len(text.encode())
        if count > self.graphemes or size > self.bytes:
            raise PermanentError(
                f"the reply is {count} graphemes ({size} bytes); "
                f"Bluesky allows {self.graphemes} graphemes ({self.bytes} bytes) in {what}"
            )


# app.bsky.feed.post's text: maxGraphemes 300, maxLength 3000 (bytes); chat.bsky.convo.defs#messageInput: 1000 / 10000.
POST_LIMIT, DM_LIMIT = StringLimit(300, 3000), StringLimit(1000, 10_000)


class Author(Payload):
    """app.bsky.actor.defs#profileViewBasic."""

    did: Name
    handle: Name
    displayName: OptionalText = None


class Ref(Payload):
    """com.atproto.repo.strongRef."""

    uri: Name
    cid: Name


class ReplyRef(Payload):
    """app.bsky.feed.post#replyRef."""

    root: Ref
    parent: Ref


class Post(Payload):
    """app.bsky.feed.post (the record)."""

    text: Text
    createdAt: Timestamp
    reply: ReplyRef | None = None
    langs: Entries = Field(default_factory=list)


class ThreadPost(Payload):
    """app.bsky.feed.defs#postView."""

    uri: Name
    cid: Name
    author: Author
    record: Post


class Notification(ThreadPost):
    """app.bsky.notification.listNotifications#notification."""

    reason: Name
    indexedAt: Timestamp


class Sender(Payload):
    """chat.bsky.convo.defs#messageViewSender."""

    did: Name


class Message(Payload):
    """chat.bsky.convo.defs#messageView."""

    id: Name
    text: Text
    sender: Sender
    sentAt: Timestamp


class Convo(Payload):
    """chat.bsky.convo.defs#convoView."""

    id: Name
    members: list[Author]
    lastMessage: dict[str, Any] | None = None

    def member(self, did: str) -> Author | None:
        """The member with this DID, if listed."""
        return next((m for m in self.members if m.did == did), None)


class _Notifications(Paged):
    notifications: list[Any]


class _Convos(Paged):
    convos: list[Any]


class _Messages(Paged):
    messages: list[Any]


def post_url(uri: str) -> str | None:
    """The bsky.app address of a post's at:// URI."""
    parts = uri.removeprefix("at://").split("/")
    return f"https://bsky.app/profile/{parts[0]}/post/{parts[2]}" if len(parts) == 3 else None


def convo_url(convo: str) -> str:
    """The bsky.app address of a conversation."""
    return f"https://bsky.app/messages/{convo}"


class Bsky:
    """The Bluesky app's calls on one account; listings are read newest first, back to a watermark."""

    def __init__(self, account: XrpcAccount, page_size: int) -> None:
        self.account, self.name, self.page_size = account, account.name, page_size
        self._profiles: dict[str, Author] = {}

    # -- posts --------------------------------------------------------------------------------------------------------

    async def notifications(self, reasons: Iterable[str], mark: Mark | None, horizon: datetime) -> list[Seen[None]]:
        """Notifications newer than the mark (without one: the horizon), oldest first, raw (parsed when mapped)."""
        reader: ReadBack[None] = ReadBack(mark, horizon, self.name)
        pages = self.account.pages(
            "app.bsky.notification.listNotifications",
            _Notifications,
            lambda cursor: models.AppBskyNotificationListNotifications.Params(
                limit=self.page_size, reasons=list(reasons), cursor=cursor
            ),
        )
        async for page in pages:
            if (
                reader.read(page.notifications, Notification, "notification", ("indexedAt", "uri"))
                or not page.notifications
            ):
                break  # reached what was read before
        return reader.new()

    async def ancestors(self, uri: str, height: int) -> AsyncIterator[tuple[str, str]]:
        """(post, author DID) of a post's ancestors from its parent up, read as they are asked for."""
        params = models.AppBskyFeedGetPostThread.Params(uri=uri, depth=0, parent_height=height)
        try:
            data = await self.account.query("app.bsky.feed.getPostThread", params)
        except PermanentError as exc:
            log.debug("%s: no thread for %s (%s); it starts its own", self.name, uri, exc)
            return
        node = data.get("thread", {}).get("parent") if isinstance(data, dict) else None
        while isinstance(node, dict) and (post := valid(ThreadPost, node.get("post"), self.name, "post")) is not None:
            yield post.uri, post.author.did
            node = node.get("parent")

    async def replies(self, uri: str) -> AsyncIterator[ThreadPost]:
        """The direct replies to a post (a misshapen one logged and passed over)."""
        params = models.AppBskyFeedGetPostThread.Params(uri=uri, depth=1, parent_height=0)
        data = await self.account.query("app.bsky.feed.getPostThread", params)
        replies = data.get("thread", {}).get("replies") if isinstance(data, dict) else None
        for node in replies if isinstance(replies, list) else []:
            if post := valid(ThreadPost, node.get("post") if isinstance(node, dict) else None, self.name, "post"):
                yield post

    async def profile(self, did: str) -> Author:
        """A DID's handle and display name, remembered; the DID for both when it cannot be read."""
        if did not in self._profiles:
            if len(self._profiles) >= PROFILES_REMEMBERED:
                self._profiles.clear()
            params = models.AppBskyActorGetProfile.Params(actor=did)
            try:
                data = await self.account.query("app.bsky.actor.getProfile", params)
            except ConnectorError as exc:
                log.info("%s: no profile for %s: %s", self.name, did, exc)
                return Author(did=did, handle=did)
            profile = one_of(Author, data)
            self._profiles[did] = Author(did=did, handle=did) if isinstance(profile, str) else profile
        return self._profiles[did]

    async def send_post(
        self,
        text: str,
        parent: models.ComAtprotoRepoStrongRef.Main,
        root: models.ComAtprotoRepoStrongRef.Main,
        langs: list[str] | None,
    ) -> str:
        """A post replying under `parent` in the thread of `root`, with its facets; its at:// URI."""
        me = await self.account.ready()
        facets = await self.facets(text)
        reply_to = models.AppBskyFeedPost.ReplyRef(root=root, parent=parent)
        client = self.account.client
        sent = await self.account.call(
            "createRecord",
            lambda: client.send_post(text, profile_identify=me, reply_to=reply_to, facets=facets, langs=langs),
        )
        return str(sent.uri)

    async def facets(self, text: str) -> list[models.AppBskyRichtextFacet.Main] | None:
        """Links, tags and @mentions as byte-range facets (atproto's detection); a handle that does not resolve stays text."""
        facets = facet_detection.detect_facets(text)
        for mention in facet_detection.detect_mentions(text):
            params = models.ComAtprotoIdentityResolveHandle.Params(handle=mention.handle.lower())
            try:
                data = await self.account.query("com.atproto.identity.resolveHandle", params)
            except PermanentError as exc:  # unknown handle (400), or a PDS that does not resolve handles
                log.debug("%s: @%s stays plain text: %s", self.name, mention.handle, exc)
                continue
            did = data.get("did") if isinstance(data, dict) else None
            if isinstance(did, str) and did:
                facets.append(
                    models.AppBskyRichtextFacet.Main(
                        features=[models.AppBskyRichtextFacet.Mention(did=did)],
                        index=models.AppBskyRichtextFacet.ByteSlice(
                            byte_start=mention.byte_start, byte_end=mention.byte_end
                        ),
                    )
                )
        return sorted(facets, key=lambda facet: facet.index.byte_start) or None

    # -- the chat service (DMs) ---------------------------------------------------------------------------------------

    async def messages(self, mark: Mark | None, horizon: datetime, me: str) -> list[Seen[Convo]]:
        """Others' messages newer than the mark in the conversations active since, oldest first."""
        floor = mark.at if mark else horizon
        found: list[Seen[Convo]] = []
        pages = self.account.pages(
            "chat.bsky.convo.listConvos",
            _Convos,
            lambda cursor: models.ChatBskyConvoListConvos.Params(limit=self.page_size, cursor=cursor),
            proxy=CHAT_PROXY,
        )
        async for page in pages:
            for raw in page.convos:
                convo = valid(Convo, raw, self.name, "conversation")
                if convo is None or convo.lastMessage is None:
                    continue
                if (last := time_of(convo.lastMessage, "sentAt")) is not None and last < floor:
                    return sorted(found, key=lambda e: e.at)  # listed by recent activity: the rest is older
                found += await self._unread(convo, mark, horizon, me)
        return sorted(found, key=lambda e: e.at)

    async def _unread(self, convo: Convo, mark: Mark | None, horizon: datetime, me: str) -> list[Seen[Convo]]:
        reader: ReadBack[Convo] = ReadBack(mark, horizon, self.name)

        def ours(raw: Any) -> bool:  # our own messages are never items
            return bool((raw.get("sender") or {}).get("did") == me)

        async for page in self.conversation(convo.id):
            views = [raw for raw in page if isinstance(raw, dict) and raw.get("$type", MESSAGE_VIEW) == MESSAGE_VIEW]
            if reader.read(views, Message, "message", ("sentAt", "id"), about=convo, skip=ours):
                break
        return reader.new()

    async def conversation(self, convo: str) -> AsyncIterator[list[Any]]:
        """A conversation's messages, raw, a page at a time, newest first."""
        pages = self.account.pages(
            "chat.bsky.convo.getMessages",
            _Messages,
            lambda cursor: models.ChatBskyConvoGetMessages.Params(convo_id=convo, limit=self.page_size, cursor=cursor),
            proxy=CHAT_PROXY,
        )
        async for page in pages:
            yield page.messages

    async def answers_to(self, convo: str, message: str) -> AsyncIterator[Message]:
        """The messages after `message` in its conversation, newest first (the answers it may have had)."""
        async for page in self.conversation(convo):
            for raw in page:
                if isinstance(raw, dict) and raw.get("id") == message:
                    return
                if isinstance(raw, dict) and "text" in raw and (parsed := valid(Message, raw, self.name, "message")):
                    yield parsed

    async def send_message(self, convo: str, text: str) -> str:
        """A message in the conversation, with its facets; its id."""
        message = models.ChatBskyConvoDefs.MessageInput(text=text, facets=await self.facets(text))
        data = models.ChatBskyConvoSendMessage.Data(convo_id=convo, message=message)
        chat = self.account.client.chat.bsky.convo
        sent = await self.account.call(
            "sendMessage", lambda: chat.send_message(data, headers={"atproto-proxy": CHAT_PROXY}), proxied=True
        )
        return str(sent.id)
