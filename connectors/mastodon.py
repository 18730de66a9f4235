"""`mastodon`: mentions and direct messages from an account's notifications; replies are statuses in the thread."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
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
from inbox.connectors.kit.connector import HttpConnector
from inbox.connectors.kit.http import VendorClient, link_param
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.parse import Entries, Id, Name, OptionalText, Payload, Text, Timestamp, one_of, page_of, valid
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
    # Also take the streaming API (server-sent events); polling stays on as the fallback.
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


class _Ref(Payload):
    """A mentioned account, or the status a reply created."""

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
    """A status's ancestors (root first) and descendants; only what the walk needs is read of each."""

    ancestors: Entries = Field(default_factory=list)
    descendants: list[Any]


class MastodonConnector(HttpConnector[MastodonSettings, MastodonCursor]):
    """Polls mention notifications (DMs are mentions with direct visibility), optionally streams them, replies in the thread."""

    type = "mastodon"

    def __init__(self, settings: MastodonSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.max_reply_chars = settings.max_reply_chars
        self.client = VendorClient(
            settings.name,
            settings.api_url,
            headers={"Authorization": f"Bearer {settings.access_token.get_secret_value()}"},
        )
        self.me = OwnAccount(settings.account_id, self._verify, lambda account: account.id)
        # status id -> thread id, for statuses we mapped and replies we sent.
        self._threads: ThreadCache[str] = ThreadCache()

    @property
    def streaming(self) -> bool:
        """True when the core should also consume `stream()`."""
        return self.settings.stream

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
            notifications, ids, link = await self._page("prev", min_id=min_id)
            fresh = [i for i in ids if i > int(min_id)]
            if not fresh:
                return  # the end; a page holding only the boundary item again counts as the end too
            newest = link if link is not None and int(link) >= max(fresh) else str(max(fresh))
            items = await self._items(notifications, me, after=int(min_id))
            yield Page(items, MastodonCursor(notification_id=newest))
            min_id = guard.next(newest) or newest

    async def _backfill(self, me: str) -> AsyncIterator[Page[MastodonCursor]]:
        # Without a cursor, walk back from the newest page; only the end of the walk is a safe cursor.
        horizon = self.clock() - timedelta(hours=self.settings.first_poll_hours)
        guard = PageGuard(f"{self.name}: notifications")
        max_id: str | None = None
        newest: int | None = None
        while True:
            notifications, listed, link = await self._page("next", max_id=max_id)
            ids = [i for i in listed if max_id is None or i < int(max_id)]
            if not ids:
                break
            newest = max(newest or 0, *ids)
            items = await self._items(notifications, me, before=int(max_id) if max_id else None)
            yield Page([i for i in items if i.posted_at >= horizon])
            if _oldest_time(notifications) < horizon:
                break
            older = link if link is not None and int(link) <= min(ids) else str(min(ids))
            max_id = guard.next(older) or older
        if newest is not None:
            yield Page([], MastodonCursor(notification_id=str(newest)))

    async def _page(self, rel: str, **bound: str | None) -> tuple[list[Any], list[int], str | None]:
        """Mention notifications within `bound` (min_id, max_id), their numeric ids, and the Link header's `rel` bound."""
        params: MultiDict[str] = MultiDict([("types[]", "mention"), ("limit", str(self.settings.page_size))])
        params.extend({key: value for key, value in bound.items() if value is not None})
        response = await self.client.get(NOTIFICATIONS, params)
        if not isinstance(response.data, list):
            raise PermanentError(
                f"{self.name}: notifications: expected a JSON array, got {type(response.data).__name__}"
            )
        ids = [number for number in map(_id_or_zero, response.data) if number]
        return (
            response.data,
            ids,
            link_param(response.headers.get("Link"), rel, "min_id" if rel == "prev" else "max_id"),
        )

    async def _items(
        self, notifications: Iterable[Any], me: str, *, after: int | None = None, before: int | None = None
    ) -> list[RawItem]:
        items = []
        # Oldest first, so a reply chain inside one page finds its parent already mapped.
        for notification in sorted(notifications, key=_id_or_zero):
            if not isinstance(notification, dict):
                log.warning("%s: skipped a notification that is not an object", self.name)
                continue
            number = _id_or_zero(notification)
            if number and ((after is not None and number <= after) or (before is not None and number >= before)):
                continue  # a boundary notification served again
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
            mentioned = (one_of(_Ref, m) for m in parsed.mentions)
            if not any(isinstance(m, _Ref) and m.id == me for m in mentioned):
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
        response = await self.client.request(
            "POST",
            STATUSES,
            json_body={"status": status, "in_reply_to_id": target.external_id, "visibility": visibility},
            # Mastodon keeps Idempotency-Key for an hour: a retry after a crash returns the status already posted.
            headers={"Idempotency-Key": idempotency_key(self.name, target.external_id, text)},
        )
        sent = page_of(_Ref, response.data, f"{self.name}: the status of the reply")
        self._threads.remember(sent.id, target.thread_id)
        return SentReply(sent.id, sent.url)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our status among the target's descendants, answering it with this text."""
        me = await self.me.id()
        for entry in (await self._context(target.external_id)).descendants:
            status = one_of(_Status, entry)
            if isinstance(status, str) or status.account.id != me or status.in_reply_to_id != target.external_id:
                continue
            if same_reply(html_to_text(status.content), text):
                self._threads.remember(status.id, target.thread_id)
                return SentReply(status.id, status.url)
        return None

    async def check(self) -> str:
        """verify_credentials: the token works and names the brand's account."""
        me = await self.me.check(
            lambda account: (
                f"{self.name}: the token belongs to account {account.id}, not account_id {self.me.configured}"
            )
        )
        return f"@{me.acct} on {urlsplit(self.client.base_url).netloc} (account {me.id})"

    async def stream(self) -> AsyncIterator[Page[MastodonCursor]]:
        """Mentions as the instance pushes them, until the connection ends; pages carry no cursor (polling owns it)."""
        me = await self.me.id()
        url = f"{(self.settings.streaming_url or self.settings.api_url).rstrip('/')}{STREAM}"
        async for notification in json_events(self.client, url, self.settings.stream_idle_seconds, "notification"):
            if items := await self._items([notification], me):
                yield Page(items)

    async def _verify(self) -> _Account:
        return page_of(_Account, (await self.client.get(VERIFY)).data, f"{self.name}: verify_credentials")

    async def _context(self, status_id: str) -> _Context:
        return page_of(
            _Context, (await self.client.get(f"{STATUSES}/{status_id}/context")).data, f"{self.name}: context"
        )


def _id_or_zero(notification: Any) -> int:
    value = notification.get("id") if isinstance(notification, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _oldest_time(notifications: list[Any]) -> datetime:
    times = [
        n.created_at
        for n in (one_of(_Notification, x) for x in notifications)
        if isinstance(n, _Notification) and n.created_at
    ]
    return min(times, default=datetime.max.replace(tzinfo=UTC))
