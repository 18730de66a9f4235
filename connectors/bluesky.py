"""`bluesky`: mentions, replies and quotes from the account's notifications, and DMs; replies are posts in the thread.

Declares the settings, the cursor and the mapping to items. The kit speaks the platform: `xrpc` the AT Protocol
through the `atproto` package (the session, kept sealed between runs; calls and their errors; paged listings), `bsky`
the Bluesky app's lexicons (notifications, threads, the chat service reached through the PDS, facets), `jetstream`
the keyword watch, `watermark` where each listing resumes.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from pydantic import Field, SecretStr

from inbox.connector import (
    Clock,
    ConnectorError,
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
from inbox.connectors.kit import bsky, xrpc
from inbox.connectors.kit.bsky import Author, Bsky, Convo, Message, Notification, Post, Ref, convo_url, post_url
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import AbsoluteUrl
from inbox.connectors.kit.jetstream import JETSTREAM_URL, Created, Jetstream
from inbox.connectors.kit.parse import Payload, one_of, valid
from inbox.connectors.kit.seal import Seal
from inbox.connectors.kit.text import any_word, same_reply
from inbox.connectors.kit.threads import CustomerThreads
from inbox.connectors.kit.watermark import Mark, Seen, advance, chunks, id_of
from inbox.connectors.kit.xrpc import NotServed, OutOfScope, XrpcAccount, graphemes, strong_ref

__all__ = ["BlueskyConnector", "BlueskyCursor", "BlueskySettings", "graphemes"]

log = logging.getLogger(__name__)

REASONS = ("mention", "reply", "quote")
POST_COLLECTION = "app.bsky.feed.post"
# How far a post's own createdAt (set by the poster's app) is trusted against the network's indexedAt.
CREATED_AT_TRUST = timedelta(hours=1)
# Ancestors read to find where a conversation with us started.
PARENT_HEIGHT = 20
NO_CHAT = "DMs are off: this PDS does not serve the chat service (chat.bsky.convo.*); mentions, replies and quotes are still polled"
NO_DMS = (
    "DMs are off: this app password was created without 'Allow access to your direct messages' "
    "(Bluesky: Settings, Privacy and security, App passwords); mentions, replies and quotes are still polled"
)


class BlueskySettings(ConnectorSettings):
    """`handle` and an app password; `api_url` is the account's PDS or the bsky.social entryway."""

    type: str = "bluesky"
    handle: str = Field(min_length=1)
    app_password: SecretStr
    api_url: AbsoluteUrl = "https://bsky.social"
    # Read and answer DMs (needs an app password with DM access; without it, the connector says so and goes on).
    dms: bool = True
    # Keep the session in the cursor store, sealed with a key derived from the app password, so a restart reuses it.
    keep_session: bool = True
    # How far back the very first poll looks.
    first_poll_hours: float = Field(default=24, ge=0)
    page_size: int = Field(default=50, ge=1, le=100)
    # A keyword watch: posts naming the brand without tagging it, read live from Jetstream. Off while empty.
    keywords: list[Annotated[str, Field(min_length=2, max_length=100)]] = Field(default_factory=list, max_length=50)
    jetstream_url: str = Field(default=JETSTREAM_URL, pattern=r"^(wss?|https?)://[^\s/?#]+(/[^\s?#]*)?$")


class BlueskyCursor(Payload):
    """Where notifications and DMs resume, and the session to reuse (sealed)."""

    notifications: Mark | None = None
    messages: Mark | None = None
    session: str | None = None


class BlueskyConnector(HttpConnector[BlueskySettings, BlueskyCursor]):
    """Polls notifications (mentions, replies, quotes) and DMs; replies with a post in the thread, or a DM."""

    type = "bluesky"

    def __init__(self, settings: BlueskySettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        password = settings.app_password
        seal = Seal(password, b"cx-inbox bluesky session", self.name) if settings.keep_session else None
        self.account = XrpcAccount(self.name, settings.api_url, settings.handle, password, clock=clock, seal=seal)
        self.bsky = Bsky(self.account, settings.page_size)
        self._no_dms: str | None = None  # why DMs are off, once known
        self._threads = CustomerThreads()  # post uri -> (its conversation, the customer's DID)
        # The keyword watch: the keywords as whole words, any case.
        self._keywords = any_word(settings.keywords)
        self._jetstream = Jetstream(self.name, settings.jetstream_url, POST_COLLECTION)

    def notes(self) -> list[str]:
        """What an admin should know although polling works: DMs off for want of access."""
        return [self._no_dms] if self._no_dms else []

    def poll_budgets(self) -> list[RateBudget]:
        """The PDS's budget, learned from its ratelimit-* headers."""
        return [self.account.budget]

    # -- the keyword watch (Jetstream) --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """True with a keyword watch: Jetstream brings the posts that name the brand without tagging it."""
        return bool(self.settings.keywords)

    async def stream(self) -> AsyncIterator[Page[BlueskyCursor]]:
        """Posts naming a keyword, live from Jetstream, until the connection ends (a drop resumes a few seconds
        before the last event seen). Pages carry no cursor."""
        me = await self.account.ready()
        async for created in self._jetstream.created():
            if created.did != me and (item := await self._watched(created)) is not None:
                yield Page([item])

    async def _watched(self, created: Created) -> RawItem | None:
        """Someone else's new post as an item when it names a keyword; None otherwise."""
        post = one_of(Post, created.record)
        if isinstance(post, str) or self._keywords is None or not self._keywords.search(post.text):
            return None
        author = await self.bsky.profile(created.did)  # Jetstream gives only the DID
        # The notification's uri too, when the post also tags the account: stored once.
        item = _post_item(created.uri, created.cid, post, author, created.seen, created.uri)
        item.reply_to["watched"] = True
        return item

    # -- polling ------------------------------------------------------------------------------------------------------

    async def fetch(self, cursor: BlueskyCursor | None) -> AsyncIterator[Page[BlueskyCursor]]:
        """New notifications, then new DMs, oldest first; each page's cursor is safe to resume from."""
        start = current = cursor or BlueskyCursor()
        me = await self.account.ready(start.session)
        horizon = self.first_poll_start()
        seen = await self.bsky.notifications(REASONS, start.notifications, horizon)
        async for page in self._pages(current, "notifications", seen, lambda e: self._post_item(e.raw, me)):
            yield page
            current = page.cursor or current
        if self.settings.dms and self._no_dms is None:
            try:
                messages = await self.bsky.messages(start.messages, horizon, me)
            except (OutOfScope, NotServed) as exc:
                self._dms_refused(exc, NO_CHAT if isinstance(exc, NotServed) else NO_DMS)
                messages = []
            async for page in self._pages(current, "messages", messages, lambda e: self._dm_item(e, me)):
                yield page
                current = page.cursor or current
        final = current.model_copy(update={"session": self.account.sealed()})
        if cursor is None or final != cursor:
            yield Page([], final)  # the first watermark, or a session refreshed since it was stored

    async def _pages(
        self, cursor: BlueskyCursor, key: str, seen: list[Any], item_of: Callable[[Any], Awaitable[RawItem | None]]
    ) -> AsyncIterator[Page[BlueskyCursor]]:
        """New entries as pages, oldest first, each with the cursor past it (and the live session)."""
        for chunk in chunks(seen, self.settings.page_size):
            items = [item for entry in chunk if (item := await item_of(entry)) is not None]
            cursor = cursor.model_copy(update={key: advance(getattr(cursor, key), chunk)})
            yield Page(items, cursor.model_copy(update={"session": self.account.sealed()}))

    async def _post_item(self, raw: Any, me: str) -> RawItem | None:
        notification = valid(Notification, raw, self.name, "notification", id_of(raw, "uri") or None)
        if notification is None or notification.reason not in REASONS:
            return None  # an older PDS may ignore `reasons`: likes, reposts and follows are no items
        n, reply = notification, notification.record.reply
        ancestors = partial(self.bsky.ancestors, n.uri, PARENT_HEIGHT)  # read only when the parent is not known
        parent = reply.parent.uri if reply else None
        thread = await self._threads.conversation_of(n.uri, n.author.did, parent, me, ancestors)
        item = _post_item(n.uri, n.cid, n.record, n.author, n.indexedAt, thread)
        item.from_brand = n.author.did == me
        return item

    async def _dm_item(self, entry: Seen[Convo], me: str) -> RawItem | None:
        message = valid(Message, entry.raw, self.name, "message", entry.id or None)
        if message is None or (convo := entry.about) is None:
            return None
        author = convo.member(message.sender.did)
        return RawItem(
            external_id=message.id,
            text=message.text,
            posted_at=message.sentAt,
            kind=Kind.DM,
            author_handle=author.handle if author else message.sender.did,
            author_name=author.displayName if author else None,
            thread_id=f"convo:{convo.id}",
            url=convo_url(convo.id),
            reply_to={"convo_id": convo.id, "did": message.sender.did},
            from_brand=message.sender.did == me,
        )

    def _dms_refused(self, exc: ConnectorError, why: str = NO_DMS) -> None:
        if self._no_dms is None:
            self._no_dms = why
            log.warning("%s: %s (%s)", self.name, why, exc)

    # -- replies ------------------------------------------------------------------------------------------------------

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A post replying in the thread (root and parent refs, facets for links and mentions), or a DM in the conversation."""
        if target.kind == Kind.DM:
            return await self._send_dm(target, text)
        bsky.POST_LIMIT.check(text, "a post")
        await self.account.ready()
        parent = strong_ref(target.reply_to, target.external_id)
        root = strong_ref(target.reply_to.get("root") or target.reply_to, target.external_id)
        langs = [lang for lang in target.reply_to.get("langs") or [] if isinstance(lang, str)][:1] or None
        uri = await self.bsky.send_post(text, parent, root, langs)
        self._threads.remember(uri, (target.thread_id, str(target.reply_to.get("did") or "")))
        return SentReply(uri, post_url(uri))

    async def _send_dm(self, target: ReplyTarget, text: str) -> SentReply:
        bsky.DM_LIMIT.check(text, "a DM")
        if not (convo := str(target.reply_to.get("convo_id") or "")):
            raise PermanentError(f"{self.name}: this DM has no conversation id to answer in")
        try:
            return SentReply(await self.bsky.send_message(convo, text), convo_url(convo))
        except OutOfScope as exc:
            self._dms_refused(exc)
            raise PermanentError(f"{self.name}: cannot answer a DM: {NO_DMS}") from exc

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our reply with this text under the post (or after the message in its conversation), if one went out."""
        me = await self.account.ready()
        if target.kind == Kind.DM:
            return await self._find_dm(target, text, me)
        async for post in self.bsky.replies(target.external_id):
            if post.author.did == me and same_reply(post.record.text, text):
                self._threads.remember(post.uri, (target.thread_id, str(target.reply_to.get("did") or "")))
                return SentReply(post.uri, post_url(post.uri))
        return None

    async def _find_dm(self, target: ReplyTarget, text: str, me: str) -> SentReply | None:
        if not (convo := str(target.reply_to.get("convo_id") or "")):
            return None
        try:
            async for message in self.bsky.answers_to(convo, target.external_id):
                if message.sender.did == me and same_reply(message.text, text):
                    return SentReply(message.id, convo_url(convo))
        except OutOfScope as exc:
            self._dms_refused(exc)
            raise PermanentError(f"{self.name}: cannot look for a DM reply: {NO_DMS}") from exc
        return None

    # -- credentials --------------------------------------------------------------------------------------------------

    async def check(self) -> str:
        """getSession with the session (logging in first): the account, and whether DMs can be answered."""
        handle, did = await self.account.whoami()
        if self.account.scope == xrpc.MAIN_PASSWORD:
            access = "DMs allowed; this is the account's main password: use an app password instead"
        elif self.account.scope == xrpc.APP_PASSWORD or self._no_dms:
            access = NO_DMS
        else:
            access = "DMs allowed" if self.settings.dms else "DMs not read (dms = false)"
        return f"@{handle} ({did}) on {self.settings.api_url}; {access}"

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.account.close()


def _post_item(uri: str, cid: str, post: Post, author: Author, indexed: datetime, thread: str) -> RawItem:
    """A post (notified, or seen on Jetstream) as an item; its reply refs and language go with it for the answer."""
    root = post.reply.root if post.reply else Ref(uri=uri, cid=cid)
    return RawItem(
        external_id=uri,
        text=post.text,
        posted_at=_posted_at(post.createdAt, indexed),
        kind=Kind.MENTION,
        author_handle=author.handle,
        author_name=author.displayName,
        thread_id=thread,
        url=post_url(uri),
        reply_to={
            "uri": uri,
            "cid": cid,
            "root": {"uri": root.uri, "cid": root.cid},
            "did": author.did,
            "langs": [lang for lang in post.langs if isinstance(lang, str)][:1],
        },
    )


def _posted_at(created: datetime, indexed: datetime) -> datetime:
    """The customer's time: the post's createdAt, unless the poster's app set it ahead of indexing or far before it."""
    return created if indexed - CREATED_AT_TRUST <= created <= indexed else indexed
