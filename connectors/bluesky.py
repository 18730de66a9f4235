"""`bluesky`: mentions, replies and quotes from the account's notifications, and DMs; replies are posts in the thread.

Speaks XRPC through the `atproto` package's AsyncClient (sessions, refresh, the chat proxy header, facets) against
`api_url` (the PDS or the bsky.social entryway). Listings are read raw and parsed here, so one misshapen
notification is skipped rather than the page refused.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import aiohttp
import jwt
import regex
from atproto_client import AsyncClient, models
from atproto_client.client.base import is_method_not_served
from atproto_client.client.session import Session, SessionEvent
from atproto_client.exceptions import (
    BadRequestError,
    LoginRequiredError,
    ModelError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.models.common import XrpcError
from atproto_client.request import AsyncRequest
from atproto_client.request import Response as XrpcResponse
from atproto_client.utils import facet_detection
from atproto_core.exceptions import AtProtocolError
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, SecretStr

from inbox import safejson
from inbox.connector import (
    AuthError,
    Clock,
    Connector,
    ConnectorError,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RateBudget,
    RateLimited,
    RawItem,
    ReplyTarget,
    SentReply,
    TransientError,
    wall_clock,
)
from inbox.connectors.kit.http import AbsoluteUrl, HeaderBudget
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import (
    Entries,
    IfObject,
    Name,
    OptionalText,
    Payload,
    Text,
    Timestamp,
    aware,
    one_of,
    page_of,
    valid,
)
from inbox.connectors.kit.text import same_reply
from inbox.connectors.kit.threads import ThreadCache
from inbox.logs import SECRETS

log = logging.getLogger(__name__)
T = TypeVar("T")
L = TypeVar("L", bound="_Paged")

# The chat service is reached through the PDS, which forwards calls carrying this header.
CHAT_PROXY = "did:web:api.bsky.chat#bsky_chat"
REASONS = ("mention", "reply", "quote")
# Jetstream, Bluesky's JSON firehose (github.com/bluesky-social/jetstream: its README lists the public instances).
JETSTREAM_URL = "wss://jetstream2.us-east.bsky.network"
POST_COLLECTION = "app.bsky.feed.post"
JETSTREAM_REWIND_US = 5_000_000  # after a drop, resume this long before the last event seen (README's advice)
AUTHORS_REMEMBERED = 10_000
# app.bsky.feed.post's text: maxGraphemes 300, maxLength 3000 (bytes); chat.bsky.convo.defs#messageInput: 1000 / 10000.
POST_GRAPHEMES, POST_BYTES = 300, 3000
DM_GRAPHEMES, DM_BYTES = 1000, 10_000
# How far a post's own createdAt (set by the poster's app) is trusted against the network's indexedAt.
CREATED_AT_TRUST = timedelta(hours=1)
# Ancestors read to find where a conversation with us started.
PARENT_HEIGHT = 20
# Errors that mean the session (not the account) is no longer good: log in again once, then give up.
_SESSION_REFUSED = frozenset({"AuthenticationRequired", "InvalidToken", "ExpiredToken"})
_NO_DM_ACCESS = ("Bad token scope", "Bad token method")  # what the chat service answers an app password without DMs
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


class Mark(Payload):
    """A watermark: the newest time read, and the ids read at exactly that time."""

    at: datetime
    ids: list[str] = Field(default_factory=list)


class BlueskyCursor(Payload):
    """Where notifications and DMs resume, and the session to reuse (sealed)."""

    notifications: Mark | None = None
    messages: Mark | None = None
    session: str | None = None


# -- payloads (the lexicons' shapes; only what an item needs) --------------------------------------------------------


class _Author(Payload):
    did: Name
    handle: Name
    displayName: OptionalText = None


class _Ref(Payload):
    uri: Name
    cid: Name


class _ReplyRef(Payload):
    root: _Ref
    parent: _Ref


class _Post(Payload):
    text: Text
    createdAt: Timestamp
    reply: _ReplyRef | None = None
    langs: Entries = Field(default_factory=list)


class _Notification(Payload):
    uri: Name
    cid: Name
    author: _Author
    reason: Name
    record: _Post
    indexedAt: Timestamp


class _JetCommit(Payload):
    """A Jetstream commit: a record created, updated or deleted in one collection of a repo."""

    operation: Name
    collection: Name
    rkey: Name
    cid: OptionalText = None
    record: Annotated[dict[str, Any] | None, IfObject] = None


class _JetEvent(Payload):
    """One Jetstream event (kind `commit`, `identity` or `account`), as its README shows it."""

    did: Name
    time_us: int
    kind: Name
    commit: Annotated[_JetCommit | None, IfObject] = None


class _Paged(Payload):
    """A listing's page: its entries, and the cursor to the next (older) page when there is one."""

    cursor: OptionalText = None


class _Listing(_Paged):
    notifications: list[Any]


class _ThreadPost(Payload):
    uri: Name
    cid: Name
    author: _Author
    record: _Post


class _Sender(Payload):
    did: Name


class _Message(Payload):
    id: Name
    text: Text
    sender: _Sender
    sentAt: Timestamp


class _Convo(Payload):
    id: Name
    members: list[_Author]
    lastMessage: dict[str, Any] | None = None


class _Convos(_Paged):
    convos: list[Any]


class _Messages(_Paged):
    messages: list[Any]


@dataclass(frozen=True, slots=True)
class _Seen:
    """An entry of a listing with its time and id, before it is mapped."""

    at: datetime
    id: str
    raw: Any
    convo: _Convo | None = None


class _Client(AsyncClient):  # type: ignore[misc]  # atproto ships no types: its client is Any to mypy
    """atproto's client reading the connector's clock, so token expiry and post times follow the injected clock."""

    def __init__(self, base_url: str | None = None, request: AsyncRequest | None = None, clock: Clock = wall_clock):
        super().__init__(base_url, request=request)
        self.clock = clock

    def get_current_time(self) -> datetime:
        """The injected clock (atproto refreshes the session 15 minutes before the access token expires by it)."""
        return self.clock()


def graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as the lexicons' maxGraphemes counts: 🇫🇷 is one."""
    return len(regex.findall(r"\X", text))


def post_url(uri: str) -> str | None:
    """The bsky.app address of a post's at:// URI."""
    parts = uri.removeprefix("at://").split("/")
    return f"https://bsky.app/profile/{parts[0]}/post/{parts[2]}" if len(parts) == 3 else None


class BlueskyConnector(Connector[BlueskySettings, BlueskyCursor]):
    """Polls notifications (mentions, replies, quotes) and DMs; replies with a post in the thread, or a DM."""

    type = "bluesky"

    def __init__(self, settings: BlueskySettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.max_reply_chars = POST_GRAPHEMES
        self.client = _Client(settings.api_url, AsyncRequest(timeout=30.0), clock)
        self.client.on_session_change(self._session_changed)
        self.budget = HeaderBudget()
        self._login_lock = asyncio.Lock()
        self._session: str | None = None  # the live session, exported
        # The session and its sealed form: sealing anew at each poll would rewrite an unchanged cursor.
        self._seal: tuple[str, str] | None = None
        self._did: str | None = None
        self._scope: str | None = None
        self._no_dms: str | None = None  # why DMs are off, once known
        # post uri -> (its conversation, the customer's DID): a post joins its parent's conversation only when the
        # parent is that same customer's or our reply to them.
        self._threads: ThreadCache[tuple[str, str]] = ThreadCache()
        # The keyword watch: the keywords as whole words, any case; the last Jetstream event's time; authors seen.
        words = "|".join(re.escape(k.strip()) for k in settings.keywords if k.strip())
        self._keywords = re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE) if words else None
        self._jet_cursor: int | None = None
        self._authors: dict[str, tuple[str, str | None]] = {}

    def notes(self) -> list[str]:
        """What an admin should know although polling works: DMs off for want of access."""
        return [self._no_dms] if self._no_dms else []

    # -- the keyword watch (Jetstream) --------------------------------------------------------------------------------

    @property
    def streaming(self) -> bool:
        """True with a keyword watch: Jetstream brings the posts that name the brand without tagging it."""
        return bool(self.settings.keywords)

    async def stream(self) -> AsyncIterator[Page[BlueskyCursor]]:
        """Posts naming a keyword, live from Jetstream, until the connection ends; after a drop it resumes a few
        seconds before the last event seen (Jetstream's cursor: microseconds). Pages carry no cursor."""
        me = await self._ready()
        url = f"{self.settings.jetstream_url.rstrip('/')}/subscribe"
        params = {"wantedCollections": POST_COLLECTION}
        if self._jet_cursor is not None:
            params["cursor"] = str(self._jet_cursor - JETSTREAM_REWIND_US)
        timeout = aiohttp.ClientTimeout(total=None, connect=10)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                async with session.ws_connect(url, params=params, heartbeat=30) as ws:
                    async for message in ws:
                        if message.type == aiohttp.WSMsgType.ERROR:
                            raise TransientError(f"{self.name}: Jetstream connection failed: {ws.exception()}")
                        if message.type != aiohttp.WSMsgType.TEXT:
                            continue
                        item = await self._watched(str(message.data), me)
                        if item is not None:
                            yield Page([item])
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise TransientError(f"{self.name}: Jetstream at {url}: {type(exc).__name__}: {exc}") from exc

    async def _watched(self, data: str, me: str) -> RawItem | None:
        """A Jetstream event as an item when it is someone else's new post naming a keyword; None otherwise."""
        try:
            event = one_of(_JetEvent, safejson.loads(data))
        except ValueError:
            return None
        if isinstance(event, str) or event.kind != "commit" or event.commit is None:
            return None
        self._jet_cursor = max(self._jet_cursor or 0, event.time_us)
        commit = event.commit
        if commit.operation != "create" or commit.collection != POST_COLLECTION or not commit.cid or event.did == me:
            return None
        post = one_of(_Post, commit.record)
        if isinstance(post, str) or self._keywords is None or not self._keywords.search(post.text):
            return None
        uri = f"at://{event.did}/{POST_COLLECTION}/{commit.rkey}"
        handle, name = await self._author(event.did)
        root = post.reply.root if post.reply else _Ref(uri=uri, cid=commit.cid)
        seen = datetime.fromtimestamp(event.time_us / 1_000_000, UTC)
        return RawItem(
            external_id=uri,  # the notification's uri too, when the post also tags the account: stored once
            text=post.text,
            posted_at=_posted_at(post.createdAt, seen),
            kind=Kind.MENTION,
            author_handle=handle,
            author_name=name,
            thread_id=uri,
            url=post_url(uri),
            reply_to={
                "uri": uri,
                "cid": commit.cid,
                "root": {"uri": root.uri, "cid": root.cid},
                "did": event.did,
                "langs": [lang for lang in post.langs if isinstance(lang, str)][:1],
                "watched": True,
            },
        )

    async def _author(self, did: str) -> tuple[str, str | None]:
        """A DID's handle and display name (Jetstream gives only the DID), remembered; the DID when not found."""
        if did not in self._authors:
            if len(self._authors) >= AUTHORS_REMEMBERED:
                self._authors.clear()
            try:
                data = await self._query("app.bsky.actor.getProfile", models.AppBskyActorGetProfile.Params(actor=did))
            except ConnectorError as exc:
                log.info("%s: no profile for %s: %s", self.name, did, exc)
                return did, None
            profile = one_of(_Author, data)
            self._authors[did] = (did, None) if isinstance(profile, str) else (profile.handle, profile.displayName)
        return self._authors[did]

    def poll_budgets(self) -> list[RateBudget]:
        """The PDS's budget, learned from its ratelimit-* headers."""
        return [self.budget]

    # -- sessions -----------------------------------------------------------------------------------------------------

    async def _session_changed(self, event: SessionEvent, session: Session) -> None:
        SECRETS.add(session.access_jwt, session.refresh_jwt, runtime=True)
        self._session = session.export()
        self._did = session.did
        try:
            claims = jwt.decode(session.access_jwt, options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        self._scope = claims.get("scope") if isinstance(claims.get("scope"), str) else None
        if event is SessionEvent.CREATE:
            log.info("%s: logged in as %s (a new session)", self.name, session.handle)

    def _key(self) -> Fernet:
        # From the app password: the stored session is useless to whoever lacks it, and a new password drops it.
        derived = HKDF(algorithm=SHA256(), length=32, salt=b"cx-inbox bluesky session", info=self.name.encode()).derive(
            self.settings.app_password.get_secret_value().encode()
        )
        return Fernet(base64.urlsafe_b64encode(derived))

    def _sealed(self) -> str | None:
        if not self.settings.keep_session or self._session is None:
            return None
        if self._seal is None or self._seal[0] != self._session:
            self._seal = (self._session, self._key().encrypt(self._session.encode()).decode())
        return self._seal[1]

    def _unsealed(self, sealed: str | None) -> str | None:
        if not sealed or not self.settings.keep_session:
            return None
        try:
            return self._key().decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            log.info("%s: the stored session was sealed with another app password; logging in anew", self.name)
            return None

    async def _ready(self, stored: str | None = None) -> str:
        """The account's DID, with a session: the live one, else the stored one, else a new one (createSession)."""
        async with self._login_lock:
            if self._session is None and (session := self._unsealed(stored)):
                try:
                    await self.client.login(session_string=session, fetch_bsky_profile=False)
                    self._seal = (session, stored) if stored and self._session == session else None
                except (AtProtocolError, ValueError) as exc:
                    log.info("%s: the stored session cannot be used (%s); logging in anew", self.name, exc)
                    self._session = None
            if self._session is None:
                await self._login()
            assert self._did is not None
            return self._did

    async def _login(self) -> None:
        try:
            await self.client.login(
                self.settings.handle, self.settings.app_password.get_secret_value(), fetch_bsky_profile=False
            )
        except RequestErrorBase as exc:
            error = self._error(exc, "createSession")
            if isinstance(error, AuthError):
                raise AuthError(
                    f"{self.name}: {self.settings.handle} cannot log in: {_detail(exc)}{_hint(exc)}"
                ) from exc
            raise error from exc

    async def _relogin(self, refused: str | None) -> None:
        async with self._login_lock:
            if self._session != refused:
                return  # a call beside this one has already logged in again
            self._session = None
            await self._login()

    # -- calls --------------------------------------------------------------------------------------------------------

    async def _call(self, what: str, call: Callable[[], Awaitable[T]], *, chat: bool = False) -> T:
        """One XRPC call with a session: a refused session is replaced once, errors become the connector's three."""
        await self._ready()
        for attempt in (1, 2):
            self.budget.check(self.clock().timestamp())
            used = self._session
            try:
                result = await call()
            except RequestErrorBase as exc:
                if exc.response is not None and exc.response.status_code != 429:
                    self.budget.update(exc.response.headers, self.clock().timestamp())
                if attempt == 1 and _session_refused(exc) and not (chat and _no_dm_access(exc)):
                    log.info("%s: %s refused the session (%s); logging in again", self.name, what, _detail(exc))
                    await self._relogin(used)
                    continue
                raise self._error(exc, what, chat=chat) from exc
            except LoginRequiredError as exc:
                raise AuthError(f"{self.name}: {what}: the server's session token carries no expiry") from exc
            except ModelError as exc:
                raise PermanentError(f"{self.name}: {what} answered an unexpected shape: {exc}") from exc
            except ValueError as exc:
                raise PermanentError(f"{self.name}: {what} returned malformed JSON: {exc}") from exc
            if isinstance(result, XrpcResponse):
                self.budget.update(result.headers, self.clock().timestamp())
            return result
        raise AssertionError("unreachable")

    def _error(self, exc: RequestErrorBase, what: str, *, chat: bool = False) -> ConnectorError:
        message = f"{self.name}: {what} failed: {_detail(exc)}"
        response = exc.response
        status = response.status_code if response is not None else None
        if is_method_not_served(exc):
            return _NotServed(message, status=status)
        if isinstance(exc, RateLimitExceededError):
            wait = exc.retry_after
            if wait is None and exc.reset_at is not None:
                wait = max(0.0, exc.reset_at.timestamp() - self.clock().timestamp())
            return RateLimited(message, wait, status=429)
        if chat and _no_dm_access(exc):
            return _NoDms(message, status=status)
        if isinstance(exc, UnauthorizedError) or _session_refused(exc):
            return AuthError(message, status=status)
        if isinstance(exc, NetworkError) or status is None or status >= 500 or status == 408:
            return TransientError(message, status=status)
        return PermanentError(message, status=status)

    async def _query(self, nsid: str, params: Any, *, chat: bool = False) -> Any:
        """A query's raw JSON body (parsed here, so a bad entry is skipped rather than the page refused)."""
        headers = {"atproto-proxy": CHAT_PROXY} if chat else None
        response = await self._call(
            nsid, lambda: self.client.invoke_query(nsid, params=params, headers=headers), chat=chat
        )
        return response.content

    async def _pages(
        self, nsid: str, model: builtins.type[L], params: Callable[[str | None], Any], *, chat: bool = False
    ) -> AsyncIterator[L]:
        """Each page of a cursor-paged listing, refusing a cursor that comes back (the caller may stop early)."""
        what = f"{self.name}: {nsid.rsplit('.', 1)[-1]}"

        async def request(cursor: str | None) -> L:
            return page_of(model, await self._query(nsid, params(cursor), chat=chat), what)

        async for page, _last in paged(what, request, lambda page: page.cursor):
            yield page

    # -- polling ------------------------------------------------------------------------------------------------------

    async def fetch(self, cursor: BlueskyCursor | None) -> AsyncIterator[Page[BlueskyCursor]]:
        """New notifications, then new DMs, oldest first; each page's cursor is safe to resume from."""
        start = cursor or BlueskyCursor()
        me = await self._ready(start.session)
        horizon = self.clock() - timedelta(hours=self.settings.first_poll_hours)
        current = start
        seen = await self._new_notifications(start.notifications, horizon)
        for chunk in _chunks(seen, self.settings.page_size):
            items = [item for entry in chunk if (item := await self._post_item(entry.raw, me)) is not None]
            current = current.model_copy(update={"notifications": _advance(current.notifications, chunk)})
            yield Page(items, current.model_copy(update={"session": self._sealed()}))
        if self.settings.dms and self._no_dms is None:
            try:
                messages = await self._new_messages(start.messages, horizon, me)
            except _NoDms as exc:
                self._dms_refused(exc)
                messages = []
            except _NotServed as exc:
                self._dms_refused(exc, NO_CHAT)
                messages = []
            for chunk in _chunks(messages, self.settings.page_size):
                items = [item for entry in chunk if (item := self._dm_item(entry, me)) is not None]
                current = current.model_copy(update={"messages": _advance(current.messages, chunk)})
                yield Page(items, current.model_copy(update={"session": self._sealed()}))
        final = current.model_copy(update={"session": self._sealed()})
        if cursor is None or final != cursor:
            yield Page([], final)  # the first watermark, or a session refreshed since it was stored

    async def _new_notifications(self, mark: Mark | None, horizon: datetime) -> list[_Seen]:
        """Notifications newer than the mark (without one: the horizon), oldest first; the listing pages back in time."""
        floor = mark.at if mark else horizon
        found: list[_Seen] = []
        pages = self._pages(
            "app.bsky.notification.listNotifications",
            _Listing,
            lambda cursor: models.AppBskyNotificationListNotifications.Params(
                limit=self.settings.page_size, reasons=list(REASONS), cursor=cursor
            ),
        )
        async for page in pages:
            times = []
            for raw in page.notifications:
                at = _time_of(raw, "indexedAt")
                if at is None:
                    valid(_Notification, raw, self.name, "notification", _id_of(raw, "uri") or None)  # logs why
                    continue
                times.append(at)
                if _is_new(at, _id_of(raw, "uri"), mark, horizon):
                    found.append(_Seen(at, _id_of(raw, "uri"), raw))
            if not page.notifications or (times and min(times) < floor):
                break  # reached what was read before
        unique = {entry.id: entry for entry in found}  # a notification served on two pages is read once
        return sorted(unique.values(), key=lambda e: e.at)

    async def _post_item(self, raw: Any, me: str) -> RawItem | None:
        notification = valid(_Notification, raw, self.name, "notification", _id_of(raw, "uri") or None)
        if notification is None or notification.reason not in REASONS:
            return None  # an older PDS may ignore `reasons`: likes, reposts and follows are no items
        post, author = notification.record, notification.author
        root = post.reply.root if post.reply else _Ref(uri=notification.uri, cid=notification.cid)
        return RawItem(
            external_id=notification.uri,
            text=post.text,
            posted_at=_posted_at(post.createdAt, notification.indexedAt),
            kind=Kind.MENTION,
            author_handle=author.handle,
            author_name=author.displayName,
            thread_id=await self._thread_of(notification, me),
            url=post_url(notification.uri),
            reply_to={
                "uri": notification.uri,
                "cid": notification.cid,
                "root": {"uri": root.uri, "cid": root.cid},
                "did": author.did,
                "langs": [lang for lang in post.langs if isinstance(lang, str)][:1],
            },
            from_brand=author.did == me,
        )

    async def _thread_of(self, notification: _Notification, me: str) -> str:
        """The conversation: the customer's topmost post in the unbroken chain of their posts and our replies."""
        reply, customer = notification.record.reply, notification.author.did
        if reply is None:
            thread = notification.uri
        elif reply.parent.uri in self._threads:
            known, whose = self._threads[reply.parent.uri]
            thread = known if whose == customer else notification.uri
        else:
            thread = await self._thread_from_ancestors(notification, me)
        self._threads.remember(notification.uri, (thread, customer))
        return thread

    async def _thread_from_ancestors(self, notification: _Notification, me: str) -> str:
        params = models.AppBskyFeedGetPostThread.Params(uri=notification.uri, depth=0, parent_height=PARENT_HEIGHT)
        try:
            data = await self._query("app.bsky.feed.getPostThread", params)
        except PermanentError as exc:
            log.debug("%s: no thread for %s (%s); it starts its own", self.name, notification.uri, exc)
            return notification.uri
        root = notification.uri
        node = data.get("thread", {}).get("parent") if isinstance(data, dict) else None
        while isinstance(node, dict) and isinstance(
            post := valid(_ThreadPost, node.get("post"), self.name, "post"), _ThreadPost
        ):
            if post.uri in self._threads:
                known, whose = self._threads[post.uri]
                return known if whose == notification.author.did else root
            if post.author.did != me:
                if post.author.did != notification.author.did:
                    break  # someone else's talk: the conversation with us starts below it
                root = post.uri
            node = node.get("parent")
        return root

    async def _new_messages(self, mark: Mark | None, horizon: datetime, me: str) -> list[_Seen]:
        """Customers' messages newer than the mark in the conversations active since, oldest first."""
        floor = mark.at if mark else horizon
        found: list[_Seen] = []
        pages = self._pages(
            "chat.bsky.convo.listConvos",
            _Convos,
            lambda cursor: models.ChatBskyConvoListConvos.Params(limit=self.settings.page_size, cursor=cursor),
            chat=True,
        )
        async for page in pages:
            quiet = False
            for raw in page.convos:
                convo = valid(_Convo, raw, self.name, "conversation")
                if convo is None or convo.lastMessage is None:
                    continue
                last = _time_of(convo.lastMessage, "sentAt")
                if last is not None and last < floor:
                    quiet = True  # listed by recent activity: every conversation after this one is older
                    break
                found += await self._messages_of(convo, mark, horizon, me)
            if quiet:
                break
        return sorted(found, key=lambda e: e.at)

    async def _messages_of(self, convo: _Convo, mark: Mark | None, horizon: datetime, me: str) -> list[_Seen]:
        floor = mark.at if mark else horizon
        found: list[_Seen] = []
        async for page in self._messages_pages(convo.id):
            older = False
            for raw in page.messages:
                if not isinstance(raw, dict) or raw.get("$type", "chat.bsky.convo.defs#messageView") != (
                    "chat.bsky.convo.defs#messageView"
                ):
                    continue  # deleted and system messages
                at = _time_of(raw, "sentAt")
                if at is None:
                    valid(_Message, raw, self.name, "message", _id_of(raw, "id") or None)  # logs why
                    continue
                if at < floor:
                    older = True
                    continue
                if (raw.get("sender") or {}).get("did") == me:
                    continue  # our own messages are never items
                if _is_new(at, _id_of(raw, "id"), mark, horizon):
                    found.append(_Seen(at, _id_of(raw, "id"), raw, convo))
            if older:
                break
        return found

    def _messages_pages(self, convo: str) -> AsyncIterator[_Messages]:
        """A conversation's messages, newest first."""
        return self._pages(
            "chat.bsky.convo.getMessages",
            _Messages,
            lambda cursor: models.ChatBskyConvoGetMessages.Params(
                convo_id=convo, limit=self.settings.page_size, cursor=cursor
            ),
            chat=True,
        )

    def _dm_item(self, entry: _Seen, me: str) -> RawItem | None:
        message = valid(_Message, entry.raw, self.name, "message", entry.id or None)
        if message is None or entry.convo is None:
            return None
        author = next((m for m in entry.convo.members if m.did == message.sender.did), None)
        return RawItem(
            external_id=message.id,
            text=message.text,
            posted_at=message.sentAt,
            kind=Kind.DM,
            author_handle=author.handle if author else message.sender.did,
            author_name=author.displayName if author else None,
            thread_id=f"convo:{entry.convo.id}",
            url=f"https://bsky.app/messages/{entry.convo.id}",
            reply_to={"convo_id": entry.convo.id, "did": message.sender.did},
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
        _fits(text, POST_GRAPHEMES, POST_BYTES, "a post")
        me = await self._ready()
        parent = _strong(target.reply_to, target.external_id)
        root = _strong(target.reply_to.get("root") or target.reply_to, target.external_id)
        facets = await self._facets(text)
        langs = [lang for lang in target.reply_to.get("langs") or [] if isinstance(lang, str)][:1] or None
        sent = await self._call(
            "createRecord",
            lambda: self.client.send_post(
                text,
                profile_identify=me,
                reply_to=models.AppBskyFeedPost.ReplyRef(root=root, parent=parent),
                facets=facets,
                langs=langs,
            ),
        )
        self._threads.remember(sent.uri, (target.thread_id, str(target.reply_to.get("did") or "")))
        return SentReply(sent.uri, post_url(sent.uri))

    async def _send_dm(self, target: ReplyTarget, text: str) -> SentReply:
        _fits(text, DM_GRAPHEMES, DM_BYTES, "a DM")
        convo = str(target.reply_to.get("convo_id") or "")
        if not convo:
            raise PermanentError(f"{self.name}: this DM has no conversation id to answer in")
        facets = await self._facets(text)
        data = models.ChatBskyConvoSendMessage.Data(
            convo_id=convo, message=models.ChatBskyConvoDefs.MessageInput(text=text, facets=facets)
        )
        try:
            sent = await self._call(
                "sendMessage",
                lambda: self.client.chat.bsky.convo.send_message(data, headers={"atproto-proxy": CHAT_PROXY}),
                chat=True,
            )
        except _NoDms as exc:
            self._dms_refused(exc)
            raise PermanentError(f"{self.name}: cannot answer a DM: {NO_DMS}") from exc
        return SentReply(sent.id, f"https://bsky.app/messages/{convo}")

    async def _facets(self, text: str) -> list[models.AppBskyRichtextFacet.Main] | None:
        """Links, tags and @mentions as byte-range facets (atproto's detection); a handle that does not resolve stays text."""
        facets = facet_detection.detect_facets(text)
        for mention in facet_detection.detect_mentions(text):
            params = models.ComAtprotoIdentityResolveHandle.Params(handle=mention.handle.lower())
            try:
                data = await self._query("com.atproto.identity.resolveHandle", params)
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

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our reply with this text under the post (or after the message in its conversation), if one went out."""
        me = await self._ready()
        if target.kind == Kind.DM:
            return await self._find_dm(target, text, me)
        params = models.AppBskyFeedGetPostThread.Params(uri=target.external_id, depth=1, parent_height=0)
        data = await self._query("app.bsky.feed.getPostThread", params)
        replies = data.get("thread", {}).get("replies") if isinstance(data, dict) else None
        for node in replies if isinstance(replies, list) else []:
            post = valid(_ThreadPost, node.get("post") if isinstance(node, dict) else None, self.name, "post")
            if post is not None and post.author.did == me and same_reply(post.record.text, text):
                self._threads.remember(post.uri, (target.thread_id, str(target.reply_to.get("did") or "")))
                return SentReply(post.uri, post_url(post.uri))
        return None

    async def _find_dm(self, target: ReplyTarget, text: str, me: str) -> SentReply | None:
        convo = str(target.reply_to.get("convo_id") or "")
        if not convo:
            return None
        try:
            async for page in self._messages_pages(convo):
                for raw in page.messages:  # newest first, down to the customer's message we answer
                    if isinstance(raw, dict) and raw.get("id") == target.external_id:
                        return None
                    message = (
                        valid(_Message, raw, self.name, "message") if isinstance(raw, dict) and "text" in raw else None
                    )
                    if message is not None and message.sender.did == me and same_reply(message.text, text):
                        return SentReply(message.id, f"https://bsky.app/messages/{convo}")
        except _NoDms as exc:
            self._dms_refused(exc)
            raise PermanentError(f"{self.name}: cannot look for a DM reply: {NO_DMS}") from exc
        return None

    # -- credentials --------------------------------------------------------------------------------------------------

    async def check(self) -> str:
        """getSession with the session (logging in first): the account, and whether DMs can be answered."""
        await self._ready()
        data = await self._query("com.atproto.server.getSession", None)
        if not isinstance(data, dict) or not data.get("did"):
            raise PermanentError(f"{self.name}: getSession answered no account")
        if data.get("active") is False:
            raise AuthError(f"{self.name}: the account {data.get('handle')} is not active ({data.get('status')})")
        if self._scope == "com.atproto.access":
            access = "DMs allowed; this is the account's main password: use an app password instead"
        elif self._scope == "com.atproto.appPass" or self._no_dms:
            access = NO_DMS
        else:
            access = "DMs allowed" if self.settings.dms else "DMs not read (dms = false)"
        return f"@{data.get('handle')} ({data['did']}) on {self.settings.api_url}; {access}"

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.request.close()


class _NoDms(AuthError):
    """The app password was made without DM access: the chat service refuses it."""


class _NotServed(PermanentError):
    """The server does not serve this method (a PDS without the chat service or the AppView's views)."""


def _detail(exc: RequestErrorBase) -> str:
    content = exc.response.content if exc.response is not None else None
    if isinstance(content, XrpcError):
        return f"{content.error}: {content.message}" if content.message else content.error
    return str(exc) or type(exc).__name__


def _hint(exc: RequestErrorBase) -> str:
    content = exc.response.content if exc.response is not None else None
    name = content.error if isinstance(content, XrpcError) else ""
    if name == "AuthFactorTokenRequired":
        return " (the account asks for an email code: use an app password, which never does)"
    if name == "AccountTakedown":
        return " (the account was taken down)"
    return " (check `handle` and `app_password`: an app password from Settings, Privacy and security, App passwords)"


def _session_refused(exc: RequestErrorBase) -> bool:
    content = exc.response.content if exc.response is not None else None
    return (
        isinstance(exc, UnauthorizedError | BadRequestError)
        and isinstance(content, XrpcError)
        and content.error in _SESSION_REFUSED
    )


def _no_dm_access(exc: RequestErrorBase) -> bool:
    content = exc.response.content if exc.response is not None else None
    return isinstance(content, XrpcError) and any(text in (content.message or "") for text in _NO_DM_ACCESS)


def _fits(text: str, most: int, most_bytes: int, what: str) -> None:
    count, size = graphemes(text), len(text.encode())
    if count > most or size > most_bytes:
        raise PermanentError(
            f"the reply is {count} graphemes ({size} bytes); Bluesky allows {most} graphemes ({most_bytes} bytes) in {what}"
        )


def _strong(ref: Any, fallback_uri: str) -> models.ComAtprotoRepoStrongRef.Main:
    uri = ref.get("uri") if isinstance(ref, dict) else None
    cid = ref.get("cid") if isinstance(ref, dict) else None
    if not isinstance(cid, str) or not cid:
        raise PermanentError(f"the post {uri or fallback_uri} has no cid to reply to")
    return models.ComAtprotoRepoStrongRef.Main(uri=uri or fallback_uri, cid=cid)


def _posted_at(created: datetime, indexed: datetime) -> datetime:
    """The customer's time: the post's createdAt, unless the poster's app set it ahead of indexing or far before it."""
    return created if indexed - CREATED_AT_TRUST <= created <= indexed else indexed


def _time_of(raw: Any, key: str) -> datetime | None:
    value = raw.get(key) if isinstance(raw, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return aware(parsed)  # without a zone: UTC, as the kit reads vendor times


def _id_of(raw: Any, key: str) -> str:
    value = raw.get(key) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else ""


def _is_new(at: datetime, ident: str, mark: Mark | None, horizon: datetime) -> bool:
    if mark is None:
        return at >= horizon
    return at > mark.at or (at == mark.at and ident not in mark.ids)


def _advance(mark: Mark | None, chunk: Iterable[_Seen]) -> Mark | None:
    """The watermark after a chunk read oldest first."""
    for entry in chunk:
        if mark is None or entry.at > mark.at:
            mark = Mark(at=entry.at, ids=[entry.id])
        elif entry.at == mark.at and entry.id not in mark.ids:
            mark = Mark(at=mark.at, ids=[*mark.ids, entry.id])
    return mark


def _chunks(entries: list[_Seen], size: int) -> Iterable[list[_Seen]]:
    for start in range(0, len(entries), size):
        yield entries[start : start + size]
