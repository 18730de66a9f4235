"""`mastodon`: mentions and direct messages from an account's notifications; replies are statuses in the thread."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from multidict import MultiDict
from pydantic import Field, SecretStr

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
from inbox.connectors.kit.auth import bearer
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import VendorClient, link_param
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.parse import Entries, Id, Name, OptionalText, Payload, Text, Timestamp, fitting, one_of, valid
from inbox.connectors.kit.sse import json_events
from inbox.connectors.kit.text import html_to_text, idempotency_key, same_reply
from inbox.connectors.kit.threads import ThreadCache

log = logging.getLogger(__name__)

NOTIFICATIONS = "/api/v1/notifications"
VERIFY = "/api/v1/accounts/verify_credentials"
STATUSES = "/api/v1/statuses"
# The `user:notification` stream: the notification events of `user` without the home-timeline firehose.
STREAM = "/api/v1/streaming/user/notification"


class MastodonSettings(ConnectorSettings):
    """`api_url` is the account's instance; `access_token` needs read:accounts, read:notifications, read:statuses, write:statuses."""

    type: str = "mastodon"
    api_url: str = Field(min_length=1)
    access_token: SecretStr
    # The brand's account id; looked up with verify_credentials when not given.
    account_id: str | None = None
    # Also take the streaming API (server-sent events); polling stays on as the fallback (the kit reads it as `streaming`).
    stream: bool = False
    # Only when the instance serves streaming from another host (its /api/v2/instance configuration.urls.streaming).
    streaming_url: str | None = None
    # Heartbeats come every ~15 s; a stream silent for this long is dead.
    stream_idle_seconds: float = Field(default=90, gt=0)
    # How far back the very first poll looks.
    first_poll_hours: float = Field(default=24, ge=0)
    # The instance's configuration.statuses.max_characters (500 on most instances).
    max_reply_chars: int = Field(default=500, gt=0)
    page_size: int = Field(default=40, ge=1, le=80)


class MastodonCursor(Payload):
    """The newest notification id stored."""

    notification_id: str


class _Account(Payload):
    id: Id
    acct: Name
    display_name: OptionalText = None


class _Ref(Payload):  # a mentioned account, or the status a reply created
    id: Id
    url: OptionalText = None


class _Status(Payload):
    """A status as the API sends it: the fields an item needs."""

    id: Id
    account: _Account
    created_at: Timestamp
    content: Text
    visibility: Name
    spoiler_text: OptionalText = None
    in_reply_to_id: Id | None = None
    reblog: Any = None
    url: OptionalText = None
    uri: OptionalText = None
    mentions: list[Any] = Field(default_factory=list)


class _Notification(Payload):
    id: OptionalText = None
    type: OptionalText = None
    created_at: Timestamp | None = None


class _Context(Payload):
    ancestors: Entries = Field(default_factory=list)
    descendants: list[Any]


class MastodonConnector(HttpConnector[MastodonSettings, MastodonCursor]):
    """Polls mention notifications (DMs are mentions with direct visibility), optionally streams them, replies in the thread."""

    type = "mastodon"

    def __init__(self, settings: MastodonSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.client = VendorClient(settings.name, settings.api_url, headers=bearer(settings.access_token))
        self.me = OwnAccount(self.name, "account_id", settings.account_id, self._verify)
        # status id -> thread id, for statuses we mapped and replies we sent.
        self._threads: ThreadCache[str] = ThreadCache()

    async def fetch(self, cursor: MastodonCursor | None) -> AsyncIterator[Page[MastodonCursor]]:
        """Mentions newer than the cursor, oldest page first; the first poll looks back `first_poll_hours`."""
        me = await self.me.id()
        pages = self._backfill(me) if cursor is None else self._forward(me, cursor.notification_id)
        async for page in pages:
            yield page

    async def _forward(self, me: str, start: str) -> AsyncIterator[Page[MastodonCursor]]:
        # min_id pages forward from the cursor: each page is the block right after the previous one, so its newest
        # id is a safe cursor. (since_id would return the newest page and leave a gap behind it in a burst.)
        guard = PageGuard(f"{self.name}: notifications")
        min_id = start
        while True:
            notifications, fresh, link = await self._page(min_id=min_id)
            if not fresh:
                return  # the end; a page holding only the boundary item again counts as the end too
            newest = link if link is not None and int(link) >= max(fresh) else str(max(fresh))
            yield Page(await self._items(notifications, me), MastodonCursor(notification_id=newest))
            min_id = guard.next(newest) or newest

    async def _backfill(self, me: str) -> AsyncIterator[Page[MastodonCursor]]:
        # Without a cursor, walk back from the newest page; only the end of the walk is a safe cursor.
        horizon = self.first_poll_start()
        guard = PageGuard(f"{self.name}: notifications")
        max_id: str | None = None
        newest: int | None = None
        while True:
            notifications, ids, link = await self._page(max_id=max_id)
            if not ids:
                break
            newest = max(newest or 0, *ids)
            yield Page([i for i in await self._items(notifications, me) if i.posted_at >= horizon])
            if _oldest_time(notifications) < horizon:
                break
            older = link if link is not None and int(link) <= min(ids) else str(min(ids))
            max_id = guard.next(older) or older
        if newest is not None:
            yield Page([], MastodonCursor(notification_id=str(newest)))

    async def _page(
        self, *, min_id: str | None = None, max_id: str | None = None
    ) -> tuple[list[Any], list[int], str | None]:
        """Mention notifications after `min_id` or before `max_id`, their numeric ids, and the Link header's next bound."""
        params: MultiDict[str] = MultiDict([("types[]", "mention"), ("limit", str(self.settings.page_size))])
        params.extend({key: value for key, value in (("min_id", min_id), ("max_id", max_id)) if value is not None})
        response = await self.client.get(NOTIFICATIONS, params)
        if not isinstance(page := response.data, list):
            raise PermanentError(f"{self.name}: notifications: expected a JSON array, got {type(page).__name__}")
        # A boundary notification served again is passed over (one without a numeric id is mapped or skipped).
        low, high = int(min_id or 0), int(max_id) if max_id else None
        page = [n for n in page if not (i := _id_or_zero(n)) or (i > low and (high is None or i < high))]
        rel, key = ("prev", "min_id") if min_id is not None else ("next", "max_id")
        return page, [i for i in map(_id_or_zero, page) if i], link_param(response.headers.get("Link"), rel, key)

    async def _items(self, notifications: Iterable[Any], me: str) -> list[RawItem]:
        items = []
        # Oldest first, so a reply chain inside one page finds its parent already mapped.
        for notification in sorted(notifications, key=_id_or_zero):
            if not isinstance(notification, dict):
                log.warning("%s: skipped a notification that is not an object", self.name)
                continue
            if notification.get("type") != "mention":
                continue  # servers before 3.5 ignore types[]
            if notification.get("status") is None and "status" in notification:
                log.debug("%s: notification %s points at a deleted status", self.name, notification.get("id"))
                continue
            if (item := await self._item(notification.get("status"), me, notification.get("id"))) is not None:
                items.append(item)
        return items

    async def _item(self, payload: Any, me: str, notification_id: Any = None) -> RawItem | None:
        if (status := valid(_Status, payload, self.name, "notification", notification_id)) is None:
            return None
        text = html_to_text(status.content)
        if status.spoiler_text and status.spoiler_text.strip():
            text = f"{status.spoiler_text.strip()}\n\n{text}"
        acct = status.account.acct
        return RawItem(
            external_id=status.id,
            text=text,
            posted_at=status.created_at,
            kind=Kind.DM if status.visibility == "direct" else Kind.MENTION,
            author_handle=acct,
            author_name=status.account.display_name,
            # The conversation: the topmost customer status of the unbroken chain of statuses that involve us.
            thread_id=await self._threads.thread_of(
                status.id, status.in_reply_to_id, status.id, lambda: self._root(status.id, me)
            ),
            url=status.url or status.uri,
            reply_to={"visibility": status.visibility, "acct": acct, "account_id": status.account.id},
            from_brand=status.account.id == me,
            is_repost=status.reblog is not None,
        )

    async def _root(self, status_id: str, me: str) -> str:
        # Status has no conversation id; the ancestors (root first) give the chain in one call.
        try:
            context = await self._context(status_id)
        except PermanentError as exc:
            log.debug("%s: no context for %s (%s); it starts its own thread", self.name, status_id, exc)
            return status_id
        root = status_id
        for ancestor in reversed(context.ancestors):
            parsed = one_of(_Status, ancestor)
            if isinstance(parsed, str):
                break
            if parsed.id in self._threads:
                return self._threads[parsed.id]
            if parsed.account.id == me:
                continue  # our own reply: the conversation goes on above it
            if me not in {mention.id for mention in fitting(_Ref, parsed.mentions)}:
                break  # someone else's talk that never involved us: the conversation with us starts below
            root = parsed.id
        return root

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A status in reply to the customer's, with its visibility (a DM stays direct) and an @mention of them."""
        acct = str(target.reply_to.get("acct") or target.author_handle).lstrip("@")
        # Unknown visibility: direct, because leaking a private conversation is worse than hiding a public answer.
        visibility = str(target.reply_to.get("visibility") or "direct")
        status = text if text.startswith(f"@{acct}") else f"@{acct} {text}"
        # Mastodon counts a mention as its local part only.
        counted = len(status) - (len(acct) - len(acct.split("@")[0]))
        if counted > self.settings.max_reply_chars:
            raise PermanentError(
                f"reply with the @{acct} mention is {counted} characters; mastodon allows {self.settings.max_reply_chars}"
            )
        sent = await self.client.request_as(
            _Ref,
            "POST",
            STATUSES,
            "POST statuses",
            json_body={"status": status, "in_reply_to_id": target.external_id, "visibility": visibility},
            # Mastodon keeps Idempotency-Key for an hour: a retry after a crash returns the status already posted.
            headers={"Idempotency-Key": idempotency_key(self.name, target.external_id, text)},
        )
        self._threads.remember(sent.id, target.thread_id)
        return SentReply(sent.id, sent.url)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our status among the target's descendants, answering it with this text."""
        me = await self.me.id()
        for status in fitting(_Status, (await self._context(target.external_id)).descendants):
            if status.account.id != me or status.in_reply_to_id != target.external_id:
                continue
            if same_reply(html_to_text(status.content), text):
                self._threads.remember(status.id, target.thread_id)
                return SentReply(status.id, status.url)
        return None

    async def check(self) -> str:
        """verify_credentials: the token works and names the brand's account."""
        me = await self.me.check()
        return f"@{me.acct} on {urlsplit(self.client.base_url).netloc} (account {me.id})"

    async def stream(self) -> AsyncIterator[Page[MastodonCursor]]:
        """Mentions as the instance pushes them, until the connection ends; pages carry no cursor (polling owns it)."""
        me = await self.me.id()
        url = f"{(self.settings.streaming_url or self.settings.api_url).rstrip('/')}{STREAM}"
        async for notification in json_events(self.client, url, self.settings.stream_idle_seconds, "notification"):
            if items := await self._items([notification], me):
                yield Page(items)

    async def _verify(self) -> _Account:
        return await self.client.get_as(_Account, VERIFY, "verify_credentials")

    async def _context(self, status_id: str) -> _Context:
        return await self.client.get_as(_Context, f"{STATUSES}/{status_id}/context", "context")


def _id_or_zero(notification: Any) -> int:
    value = notification.get("id") if isinstance(notification, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _oldest_time(notifications: list[Any]) -> datetime:
    times = [n.created_at for n in fitting(_Notification, notifications) if n.created_at]
    return min(times, default=datetime.max.replace(tzinfo=UTC))
