"""`mastodon`: mentions and direct messages from an account's notifications; replies are statuses in the thread."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from multidict import MultiDict
from pydantic import BaseModel, Field, SecretStr

from inbox import safejson
from inbox.connector import (
    Connector,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RawItem,
    ReplyTarget,
    SentReply,
    TransientError,
)
from inbox.http import PageGuard, VendorClient, error_for

log = logging.getLogger(__name__)

NOTIFICATIONS = "/api/v1/notifications"
VERIFY = "/api/v1/accounts/verify_credentials"
STATUSES = "/api/v1/statuses"
# The `user:notification` stream: the notification events of `user` without the home-timeline firehose.
STREAM = "/api/v1/streaming/user/notification"
# Statuses remembered with their thread, so a reply chain inside one burst costs no extra call.
THREAD_CACHE = 10_000
# A stream line this long is not Mastodon talking.
MAX_SSE_LINE = 1 << 20


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


class MastodonCursor(BaseModel):
    """The newest notification id stored."""

    notification_id: str


@dataclass(frozen=True, slots=True)
class _Me:
    id: str
    acct: str


class _Skip(Exception):
    """One notification or status that cannot be mapped."""


class MastodonConnector(Connector[MastodonSettings, MastodonCursor]):
    """Polls mention notifications (DMs are mentions with direct visibility), optionally streams them, replies in the thread."""

    type = "mastodon"
    settings_model = MastodonSettings
    cursor_model = MastodonCursor
    channel = "mastodon"

    def __init__(self, settings: MastodonSettings) -> None:
        super().__init__(settings)
        self.max_reply_chars = settings.max_reply_chars
        self.client = VendorClient(
            settings.name, settings.api_url, headers={"Authorization": f"Bearer {settings.access_token.get_secret_value()}"}
        )
        self._me: _Me | None = _Me(settings.account_id, "") if settings.account_id else None
        # status id -> thread id, for statuses we mapped and replies we sent.
        self._threads: OrderedDict[str, str] = OrderedDict()

    @property
    def streaming(self) -> bool:
        """True when the core should also consume `stream()`."""
        return self.settings.stream

    async def fetch(self, cursor: MastodonCursor | None) -> AsyncIterator[Page[MastodonCursor]]:
        """Mentions newer than the cursor, oldest page first; the first poll looks back `first_poll_hours`."""
        me = await self._account()
        pages = self._backfill(me) if cursor is None else self._forward(me, cursor.notification_id)
        async for page in pages:
            yield page

    async def _forward(self, me: _Me, start: str) -> AsyncIterator[Page[MastodonCursor]]:
        # min_id pages forward from the cursor: each page is the block right after the previous one, so its newest
        # id is a safe cursor. (since_id would return the newest page and leave a gap behind it in a burst.)
        guard = PageGuard(f"{self.name}: notifications")
        min_id = start
        while True:
            response = await self.client.get(NOTIFICATIONS, self._params(min_id=min_id))
            notifications = self._notifications(response.data)
            fresh = [i for i in _ids(notifications) if i > int(min_id)]
            if not fresh:
                return  # the end; a page holding only the boundary item again counts as the end too
            link = _link_param(response.headers.get("Link"), "prev", "min_id")
            newest = link if link is not None and int(link) >= max(fresh) else str(max(fresh))
            items = await self._items(notifications, me, after=int(min_id))
            yield Page(items, MastodonCursor(notification_id=newest))
            min_id = guard.next(newest) or newest

    async def _backfill(self, me: _Me) -> AsyncIterator[Page[MastodonCursor]]:
        # Without a cursor, walk back from the newest page; only the end of the walk is a safe cursor.
        horizon = datetime.now(UTC) - timedelta(hours=self.settings.first_poll_hours)
        guard = PageGuard(f"{self.name}: notifications")
        max_id: str | None = None
        newest: int | None = None
        while True:
            response = await self.client.get(NOTIFICATIONS, self._params(max_id=max_id))
            notifications = self._notifications(response.data)
            ids = [i for i in _ids(notifications) if max_id is None or i < int(max_id)]
            if not ids:
                break
            newest = max(newest or 0, *ids)
            items = await self._items(notifications, me, before=int(max_id) if max_id else None)
            yield Page([i for i in items if i.posted_at >= horizon])
            if _oldest_time(notifications) < horizon:
                break
            link = _link_param(response.headers.get("Link"), "next", "max_id")
            older = link if link is not None and int(link) <= min(ids) else str(min(ids))
            max_id = guard.next(older) or older
        if newest is not None:
            yield Page([], MastodonCursor(notification_id=str(newest)))

    def _params(self, *, min_id: str | None = None, max_id: str | None = None) -> MultiDict[str]:
        params: MultiDict[str] = MultiDict([("types[]", "mention"), ("limit", str(self.settings.page_size))])
        if min_id is not None:
            params["min_id"] = min_id
        if max_id is not None:
            params["max_id"] = max_id
        return params

    def _notifications(self, data: Any) -> list[Any]:
        if not isinstance(data, list):
            raise PermanentError(f"{self.name}: notifications: expected a JSON array, got {type(data).__name__}")
        return data

    async def _items(
        self, notifications: Iterable[Any], me: _Me, *, after: int | None = None, before: int | None = None
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
            try:
                items.append(await self._item(notification.get("status"), me))
            except _Skip as exc:
                log.warning("%s: skipped notification %r: %s", self.name, str(notification.get("id"))[:40], exc)
        return items

    async def _item(self, status: Any, me: _Me) -> RawItem:
        try:
            status_id = _text(status["id"])
            account = status["account"]
            author_id, acct = _text(account["id"]), _text(account["acct"])
            posted_at = _time(status["created_at"])
            content = status["content"]
            visibility = _text(status["visibility"])
            if not isinstance(content, str):
                raise TypeError("content is not a string")
        except (KeyError, TypeError, ValueError) as exc:
            raise _Skip(f"unexpected status shape ({type(exc).__name__}: {exc})") from None
        text = html_to_text(content)
        spoiler = status.get("spoiler_text")
        if isinstance(spoiler, str) and spoiler.strip():
            text = f"{spoiler.strip()}\n\n{text}"
        thread = await self._thread_of(status, me)
        name = account.get("display_name")
        url = status.get("url") or status.get("uri")
        return RawItem(
            external_id=status_id,
            text=text,
            posted_at=posted_at,
            kind=Kind.DM if visibility == "direct" else Kind.MENTION,
            author_handle=acct,
            author_name=name if isinstance(name, str) and name else None,
            thread_id=thread,
            url=url if isinstance(url, str) else None,
            reply_to={"visibility": visibility, "acct": acct, "account_id": author_id},
            from_brand=author_id == me.id,
            is_repost=status.get("reblog") is not None,
        )

    async def _thread_of(self, status: dict[str, Any], me: _Me) -> str:
        """The conversation: the topmost customer status of the unbroken chain of statuses that involve us."""
        status_id = str(status["id"])
        parent = status.get("in_reply_to_id")
        if parent is None:
            thread = status_id
        elif str(parent) in self._threads:
            thread = self._threads[str(parent)]
        else:
            thread = await self._thread_from_context(status_id, me)
        self._remember(status_id, thread)
        return thread

    async def _thread_from_context(self, status_id: str, me: _Me) -> str:
        # Status has no conversation id; the ancestors (root first) give the chain in one call.
        try:
            response = await self.client.get(f"{STATUSES}/{status_id}/context")
        except PermanentError as exc:
            log.debug("%s: no context for %s (%s); it starts its own thread", self.name, status_id, exc)
            return status_id
        ancestors = response.data.get("ancestors") if isinstance(response.data, dict) else None
        root = status_id
        for ancestor in reversed(ancestors if isinstance(ancestors, list) else []):
            if not isinstance(ancestor, dict) or not isinstance(ancestor.get("account"), dict):
                break
            ancestor_id = str(ancestor.get("id"))
            if ancestor_id in self._threads:
                return self._threads[ancestor_id]
            if str(ancestor["account"].get("id")) == me.id:
                continue  # our own reply: the conversation goes on above it
            mentions = ancestor.get("mentions") if isinstance(ancestor.get("mentions"), list) else []
            if not any(isinstance(m, dict) and str(m.get("id")) == me.id for m in mentions):
                break  # someone else's talk that never involved us: the conversation with us starts below
            root = ancestor_id
        return root

    def _remember(self, status_id: str, thread: str) -> None:
        self._threads[status_id] = thread
        self._threads.move_to_end(status_id)
        while len(self._threads) > THREAD_CACHE:
            self._threads.popitem(last=False)

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
        # Mastodon keeps Idempotency-Key for an hour: a retry after a crash returns the status already posted.
        key = hashlib.sha256(f"{self.name}\n{target.external_id}\n{text}".encode()).hexdigest()
        response = await self.client.request(
            "POST",
            STATUSES,
            json_body={"status": status, "in_reply_to_id": target.external_id, "visibility": visibility},
            headers={"Idempotency-Key": key},
        )
        data = response.data
        if not isinstance(data, dict) or not data.get("id"):
            raise PermanentError(f"{self.name}: the instance accepted the reply but answered no status")
        self._remember(str(data["id"]), target.thread_id)
        return SentReply(str(data["id"]), data.get("url") if isinstance(data.get("url"), str) else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our status among the target's descendants, answering it with this text."""
        me = await self._account()
        response = await self.client.get(f"{STATUSES}/{target.external_id}/context")
        descendants = response.data.get("descendants") if isinstance(response.data, dict) else None
        if not isinstance(descendants, list):
            raise PermanentError(f"{self.name}: status context has no descendants list")
        wanted = _unaddressed(text)
        for status in descendants:
            if not isinstance(status, dict) or not isinstance(status.get("account"), dict):
                continue
            if str(status["account"].get("id")) != me.id or str(status.get("in_reply_to_id")) != target.external_id:
                continue
            content = status.get("content")
            if isinstance(content, str) and _unaddressed(html_to_text(content)) == wanted:
                self._remember(str(status["id"]), target.thread_id)
                return SentReply(str(status["id"]), status.get("url") if isinstance(status.get("url"), str) else None)
        return None

    async def check(self) -> str:
        """verify_credentials: the token works and names the brand's account."""
        me = await self._verify()
        return f"@{me.acct} on {urlsplit(self.client.base_url).netloc} (account {me.id})"

    async def stream(self) -> AsyncIterator[Page[MastodonCursor]]:
        """Mentions as the instance pushes them, until the connection ends; pages carry no cursor (polling owns it)."""
        me = await self._account()
        base = (self.settings.streaming_url or self.settings.api_url).rstrip("/")
        url = f"{base}{STREAM}"
        what = f"{self.name}: GET {url}"
        # No total limit on a stream that is meant to stay open; a silent one is dead after stream_idle_seconds.
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=self.settings.stream_idle_seconds)
        headers = {**self.client.headers, "Accept": "text/event-stream"}
        try:
            async with self.client.session().get(url, headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    error = error_for(response.status, response.headers, await response.text(errors="replace"), what)
                    raise error or PermanentError(f"{what} answered HTTP {response.status}")
                async for event, data in _sse_events(response.content):
                    if event != "notification":
                        continue
                    try:
                        notification = safejson.loads(data)
                    except ValueError:
                        log.warning("%s: skipped a stream event that is not JSON: %r", self.name, data[:80])
                        continue
                    items = await self._items([notification], me)
                    if items:
                        yield Page(items)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientError(f"{what} dropped: {type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        """Close the HTTP session."""
        await self.client.close()

    async def _account(self) -> _Me:
        if self._me is None:
            self._me = await self._verify()
        return self._me

    async def _verify(self) -> _Me:
        data = (await self.client.get(VERIFY)).data
        if not isinstance(data, dict) or not data.get("id") or not data.get("acct"):
            raise PermanentError(f"{self.name}: verify_credentials answered no account")
        me = _Me(str(data["id"]), str(data["acct"]))
        if self.settings.account_id and self.settings.account_id != me.id:
            raise PermanentError(f"{self.name}: the token belongs to account {me.id}, not account_id {self.settings.account_id}")
        self._me = me
        return me


class _TextExtractor(HTMLParser):
    """Text of Mastodon's status HTML, keeping paragraphs and line breaks."""

    BLOCKS = frozenset({"p", "div", "blockquote", "pre", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Line breaks for <br> and block elements."""
        if tag == "br":
            self.parts.append("\n")
        elif tag in self.BLOCKS and self.parts:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        """Keep text, including the hidden parts of shortened links."""
        self.parts.append(data)


def html_to_text(html: str) -> str:
    """Plain text of a status's `content`: tags dropped, entities unescaped, <br>/<p> kept as line breaks."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    text = "".join(parser.parts)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


async def _sse_events(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream; comments (heartbeats) skipped."""
    buffer = b""
    event, data = "message", []
    async for chunk in content.iter_any():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        if len(buffer) > MAX_SSE_LINE:
            raise TransientError("stream line longer than 1 MiB")
        for raw in lines:
            line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if not line:
                if data:
                    yield event, "\n".join(data)
                event, data = "message", []
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


def _link_param(header: str | None, rel: str, param: str) -> str | None:
    """A numeric query parameter of one Link relation, e.g. min_id of rel="prev"."""
    for part in (header or "").split(","):
        target, _, attributes = part.partition(";")
        rels = [a.split("=", 1)[1].strip().strip('"') for a in attributes.split(";") if a.strip().startswith("rel=")]
        if rel in rels:
            values = parse_qs(urlsplit(target.strip().strip("<>")).query).get(param)
            if values and values[0].isdigit():
                return values[0]
    return None


def _ids(notifications: list[Any]) -> list[int]:
    return [n for n in (_id_or_zero(x) for x in notifications) if n]


def _id_or_zero(notification: Any) -> int:
    value = notification.get("id") if isinstance(notification, dict) else None
    return int(value) if isinstance(value, str) and value.isdigit() else 0


def _oldest_time(notifications: list[Any]) -> datetime:
    times = []
    for notification in notifications:
        try:
            times.append(_time(notification["created_at"]))
        except (KeyError, TypeError, ValueError):
            continue
    return min(times, default=datetime.max.replace(tzinfo=UTC))


def _time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError("created_at is not a string")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {type(value).__name__}")
    return value


def _unaddressed(text: str) -> str:
    """The words of a status without the leading @mentions that address it."""
    return re.sub(r"^(?:@\S+\s+)+", "", " ".join(text.split()) + " ").strip()
