"""`x`: mentions and DMs from the X (Twitter) API v2 through tweepy's AsyncClient; replies as reply posts or DMs."""

from __future__ import annotations

import html
import logging
import re
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from pydantic import BaseModel, Field, SecretStr, field_validator
from tweepy.asynchronous import AsyncClient
from yarl import URL

from inbox.connector import (
    CHANNELS,
    AuthError,
    Clock,
    Connector,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RateBudget,
    RawItem,
    ReplyTarget,
    SentReply,
    TransientError,
    wall_clock,
)
from inbox.connectors.kit.http import DEFAULT_TIMEOUT, HeaderBudget, close_session, error_for, open_session
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.text import same_reply

log = logging.getLogger(__name__)


def _no_request_dumps(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Making API request")


def _no_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


# At DEBUG, tweepy logs each request's headers (the bearer token) and oauthlib each signature's
# parameters (the access token): secrets never reach a log, whatever the level.
logging.getLogger("tweepy.asynchronous.client").addFilter(_no_request_dumps)
logging.getLogger("oauthlib.oauth1.rfc5849").addFilter(_no_debug)

API_URL = "https://api.twitter.com"
# tweepy builds every URL on this host; the transport middleware moves requests to `api_url`.
TWEEPY_HOST = URL(API_URL)

TWEET_FIELDS = ["created_at", "author_id", "conversation_id", "in_reply_to_user_id", "referenced_tweets"]
TWEET_EXPANSIONS = ["author_id"]
USER_FIELDS = ["username", "name"]
DM_FIELDS = ["id", "text", "event_type", "created_at", "sender_id", "dm_conversation_id"]
DM_EXPANSIONS = ["sender_id"]

# twitter-text v3: these code points weigh 1, everything else 2; a link always counts 23.
_LIGHT_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_WEIGHTLESS = {0x200D, 0xFE0E, 0xFE0F} | set(range(0x1F3FB, 0x1F400))  # joiners, variation selectors, skin tones
_URL = re.compile(r"https?://\S+")
_ID_SEGMENT = re.compile(r"(?<=.)/\d[\d-]*(?=/|$)")  # not the leading /2 version
# The endpoints a poll reads (keys of XTransport.budgets): their windows pace polls, the reply endpoints' do not.
POLL_ENDPOINTS = ("GET /2/users/:id/mentions", "GET /2/dm_events")


class XSettings(ConnectorSettings):
    """OAuth 1.0a user-context keys of the brand's account (replies, DMs), an optional app bearer token for reads."""

    type: str = "x"
    bearer_token: SecretStr | None = None
    consumer_key: SecretStr
    consumer_secret: SecretStr
    access_token: SecretStr
    access_token_secret: SecretStr
    # The brand's numeric account id; looked up with GET /2/users/me when absent.
    user_id: str | None = Field(default=None, pattern=r"^\d+$")
    dms: bool = True
    page_size: int = Field(default=100, ge=5, le=100)
    # How far back the very first poll reaches; later polls continue from the cursor.
    first_poll_hours: float = Field(default=24, gt=0)
    # 280 for standard accounts; X Premium accounts may post longer replies.
    max_reply_chars: int = Field(default=280, gt=0)

    @field_validator("api_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith(("https://", "http://")) or not URL(value).host):
            raise ValueError("must be an absolute http(s) URL, e.g. https://api.twitter.com")
        return value

    @field_validator("user_id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # TOML users write `user_id = 783214`; X ids are strings on the wire.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class XCursor(BaseModel):
    """Newest mention and DM event ids seen (X ids grow with time); `start_time` bounds the reach until one is seen."""

    since_id: str | None = None
    dm_since_id: str | None = None
    start_time: datetime | None = None


class XConnector(Connector[XSettings, XCursor]):
    """Polls mentions (`since_id`) and DM events (newest first, down to the last seen id); replies in place."""

    type = "x"
    settings_model = XSettings
    cursor_model = XCursor
    channel = "x"

    def __init__(self, settings: XSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.max_reply_chars = settings.max_reply_chars
        self._own_id = settings.user_id
        self._transport = XTransport(self.name, settings.api_url or API_URL)
        bearer = settings.bearer_token
        self._api = AsyncClient(
            bearer_token=bearer.get_secret_value() if bearer else None,
            consumer_key=settings.consumer_key.get_secret_value(),
            consumer_secret=settings.consumer_secret.get_secret_value(),
            access_token=settings.access_token.get_secret_value(),
            access_token_secret=settings.access_token_secret.get_secret_value(),
            return_type=dict,
        )
        # Reads go app-only when a bearer token is configured (higher limits), else as the brand's user.
        self._read_as_user = bearer is None
        self._session: aiohttp.ClientSession | None = None

    async def fetch(self, cursor: XCursor | None) -> AsyncIterator[Page[XCursor]]:
        """Yield new mentions, then new DMs; each stream's cursor rides on its last page only (X pages newest first)."""
        start = cursor or XCursor(
            start_time=self.clock().replace(microsecond=0) - timedelta(hours=self.settings.first_poll_hours)
        )
        own_id = await self._user_id()
        state = start.model_copy()
        async for page in self._mentions(own_id, start, state):
            yield page
        if self.settings.dms:
            async for page in self._dms(own_id, start, state):
                yield page

    def reply_limit(self, kind: Kind) -> int | None:
        """Posts take 280 (weighted) characters; DMs take 10,000."""
        return CHANNELS["x"].limit(kind) if kind == Kind.DM else self.max_reply_chars

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A DM answers a DM; anything else gets a reply post under the customer's post."""
        if target.kind == Kind.DM:
            conversation = _dm_conversation(target)
            body = await self._call(
                "POST dm message", self._api.create_direct_message(dm_conversation_id=conversation, text=text)
            )
            event_id = _field(body.get("data"), "dm_event_id")
            return SentReply(event_id, f"https://x.com/messages/{conversation}")
        weight = weighted_length(text)
        if weight > self.settings.max_reply_chars:
            raise PermanentError(
                f"X counts this reply as {weight} characters (links count 23, most non-Latin "
                f"characters and emoji count 2); the limit is {self.settings.max_reply_chars}"
            )
        body = await self._call(
            "POST tweet", self._api.create_tweet(text=text, in_reply_to_tweet_id=target.external_id)
        )
        tweet_id = _field(body.get("data"), "id")
        return SentReply(tweet_id, _status_url(None, tweet_id) if tweet_id else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our reply on the platform: in the brand's timeline since the post, or in the DM conversation."""
        own_id = await self._user_id()
        if target.kind == Kind.DM:
            return await self._find_dm_reply(own_id, target, text)
        guard = PageGuard(f"{self.name}: brand timeline")
        token: str | None = None
        while True:
            # The reply is newer than the post it answers, so since_id bounds the search.
            body = await self._call("GET brand timeline", self._api.get_users_tweets(
                own_id, since_id=target.external_id, max_results=100, pagination_token=token,
                tweet_fields=["referenced_tweets", "created_at"], user_auth=self._read_as_user,
            ))
            for tweet in _entries(body, "brand timeline"):
                if (
                    isinstance(tweet, dict)
                    and any(r.get("type") == "replied_to" and r.get("id") == target.external_id for r in _references(tweet))
                    and same_reply(tweet.get("text"), text)
                ):
                    tweet_id = str(tweet.get("id"))
                    return SentReply(tweet_id, _status_url(None, tweet_id))
            token = guard.next(_next_token(body))
            if token is None:
                return None

    async def check(self) -> str:
        """GET /2/users/me with the user-context keys: the account replies are sent from."""
        me = await self._me()
        if self.settings.user_id and self.settings.user_id != me["id"]:
            raise PermanentError(
                f"user_id {self.settings.user_id} is not the account these tokens belong to "
                f"(@{me['username']}, id {me['id']})"
            )
        self._own_id = me["id"]
        reads = "app bearer token" if self.settings.bearer_token else "user context"
        dms = "mentions and DMs" if self.settings.dms else "mentions"
        return f"@{me['username']} ({me['name']}), user id {me['id']}; reading {dms} with the {reads}"

    def poll_budgets(self) -> list[RateBudget]:
        """The mentions and DM events windows: X limits each endpoint on its own (10 mentions reads per 15 min on Basic)."""
        return [budget for key, budget in self._transport.budgets.items() if key in POLL_ENDPOINTS]

    async def close(self) -> None:
        """Close the HTTP session."""
        await close_session(self._session)

    async def _mentions(self, own_id: str, start: XCursor, state: XCursor) -> AsyncIterator[Page[XCursor]]:
        guard = PageGuard(f"{self.name}: mentions")
        token: str | None = None
        newest = start.since_id
        while True:
            body = await self._call("GET mentions", self._api.get_users_mentions(
                own_id,
                since_id=start.since_id,
                start_time=start.start_time if start.since_id is None else None,
                max_results=self.settings.page_size,
                pagination_token=token,
                expansions=TWEET_EXPANSIONS,
                tweet_fields=TWEET_FIELDS,
                user_fields=USER_FIELDS,
                user_auth=self._read_as_user,
            ))
            users = _users(body)
            items = []
            for tweet in _entries(body, "mentions"):
                tweet_id = _id_of(tweet)
                if tweet_id is None:
                    log.warning("%s: skipped a mention without a numeric id: %.200r", self.name, tweet)
                    continue
                newest = _newer(newest, tweet_id)
                item = self._tweet_item(tweet, users, own_id)
                if item is not None:
                    items.append(item)
            token = guard.next(_next_token(body))
            if token is None:
                # Only after the last page is everything down to since_id in; the id may move then.
                state.since_id = newest
                yield Page(items, state.model_copy())
                return
            yield Page(items)

    async def _dms(self, own_id: str, start: XCursor, state: XCursor) -> AsyncIterator[Page[XCursor]]:
        guard = PageGuard(f"{self.name}: DM events")
        token: str | None = None
        newest = start.dm_since_id
        # Per conversation, the brand's earliest DM seen so far: events come newest first, so it answers what comes next.
        answers: dict[str, datetime] = {}
        while True:
            # GET /2/dm_events has no since_id: page back (newest first) until the last id we saw.
            body = await self._call("GET dm_events", self._api.get_direct_message_events(
                event_types="MessageCreate",
                dm_event_fields=DM_FIELDS,
                expansions=DM_EXPANSIONS,
                user_fields=USER_FIELDS,
                max_results=self.settings.page_size,
                pagination_token=token,
            ))
            users = _users(body)
            items = []
            reached = False
            for event in _entries(body, "DM events"):
                event_id = _id_of(event)
                if event_id is None:
                    log.warning("%s: skipped a DM event without a numeric id: %.200r", self.name, event)
                    continue
                if start.dm_since_id is not None and int(event_id) <= int(start.dm_since_id):
                    reached = True
                    break
                item = self._dm_item(event, users, own_id)
                if start.dm_since_id is None and start.start_time and item and item.posted_at < start.start_time:
                    reached = True
                    break
                newest = _newer(newest, event_id)
                if item is not None:
                    if item.from_brand:
                        answers[str(item.thread_id)] = item.posted_at
                    else:
                        item.answered_at = answers.get(str(item.thread_id))
                    items.append(item)
            token = None if reached else guard.next(_next_token(body))
            if token is None:
                state.dm_since_id = newest
                yield Page(items, state.model_copy())
                return
            yield Page(items)

    def _tweet_item(self, tweet: Any, users: dict[str, dict[str, Any]], own_id: str) -> RawItem | None:
        try:
            tweet_id = _x_id(tweet["id"])
            text = _text(tweet["text"])
            author_id = _text(tweet["author_id"])
            posted_at = _timestamp(tweet["created_at"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: skipped mention %s: %s", self.name, _describe_id(tweet), _problem(exc))
            return None
        author = users.get(author_id, {})
        handle = str(author.get("username") or author_id)
        conversation = tweet.get("conversation_id")
        conversation = conversation if isinstance(conversation, str) and conversation else tweet_id
        return RawItem(
            external_id=tweet_id,
            # v2 sends &, < and > as HTML entities.
            text=html.unescape(text),
            posted_at=posted_at,
            kind=Kind.MENTION,
            author_handle=handle,
            author_name=_optional_text(author.get("name")),
            # One thread per customer in a conversation: many customers answering one brand post
            # must not become one ticket that only the last of them gets a reply to.
            thread_id=f"{conversation}:{author_id}",
            url=_status_url(author.get("username"), tweet_id),
            reply_to={"in_reply_to_tweet_id": tweet_id, "author_id": author_id, "conversation_id": conversation},
            from_brand=author_id == own_id,
            is_repost=any(ref.get("type") == "retweeted" for ref in _references(tweet)),
        )

    def _dm_item(self, event: Any, users: dict[str, dict[str, Any]], own_id: str) -> RawItem | None:
        try:
            event_id = _x_id(event["id"])
            if event.get("event_type", "MessageCreate") != "MessageCreate":
                return None  # participants joining or leaving a group say nothing to answer
            text = _text(event["text"])
            sender_id = _text(event["sender_id"])
            conversation = _text(event["dm_conversation_id"])
            posted_at = _timestamp(event["created_at"])
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: skipped DM event %s: %s", self.name, _describe_id(event), _problem(exc))
            return None
        sender = users.get(sender_id, {})
        return RawItem(
            external_id=event_id,
            text=text,
            posted_at=posted_at,
            kind=Kind.DM,
            author_handle=str(sender.get("username") or sender_id),
            author_name=_optional_text(sender.get("name")),
            thread_id=conversation,
            url=f"https://x.com/messages/{conversation}",
            reply_to={"dm_conversation_id": conversation, "sender_id": sender_id},
            from_brand=sender_id == own_id,
        )

    async def _find_dm_reply(self, own_id: str, target: ReplyTarget, text: str) -> SentReply | None:
        conversation = _dm_conversation(target)
        guard = PageGuard(f"{self.name}: DM conversation")
        token: str | None = None
        while True:
            body = await self._call("GET dm conversation", self._api.get_direct_message_events(
                dm_conversation_id=conversation, dm_event_fields=DM_FIELDS, max_results=100, pagination_token=token,
            ))
            for event in _entries(body, "DM conversation"):
                event_id = _id_of(event)
                if event_id is None:
                    continue
                if int(event_id) <= int(target.external_id):
                    return None  # older than the DM we answer: our reply cannot be further back
                if event.get("sender_id") == own_id and same_reply(event.get("text"), text):
                    return SentReply(event_id, f"https://x.com/messages/{conversation}")
            token = guard.next(_next_token(body))
            if token is None:
                return None

    async def _user_id(self) -> str:
        if self._own_id is None:
            self._own_id = (await self._me())["id"]
        return self._own_id

    async def _me(self) -> dict[str, str]:
        body = await self._call("GET users/me", self._api.get_me(user_fields=USER_FIELDS))
        data = body.get("data")
        try:
            me = {key: _text(data[key]) for key in ("id", "username", "name")}  # type: ignore[index]
        except (KeyError, TypeError, ValueError) as exc:
            raise PermanentError(f"{self.name}: GET /2/users/me answered an unexpected shape: {_problem(exc)}") from exc
        if not me["id"].isdigit():
            raise PermanentError(f"{self.name}: GET /2/users/me answered a non-numeric id {me['id'][:40]!r}")
        return me

    async def _call(self, what: str, request: Awaitable[Any]) -> dict[str, Any]:
        """Await one tweepy call on our session; non-2xx answers were already raised by the transport."""
        self._bind_session()
        try:
            body = await request
        except aiohttp.ContentTypeError as exc:
            raise PermanentError(f"{self.name}: {what} answered a body that is not JSON: {exc.message}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{self.name}: {what} failed: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise PermanentError(f"{self.name}: {what} returned malformed JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise PermanentError(f"{self.name}: {what} returned a JSON {type(body).__name__}, expected an object")
        return body

    def _bind_session(self) -> None:
        # tweepy uses `AsyncClient.session` when set (its documented attribute) and opens one per request otherwise.
        if self._session is None or self._session.closed:
            self._session = open_session(timeout=DEFAULT_TIMEOUT, middlewares=(self._transport,))
        self._api.session = self._session


class XTransport:
    """aiohttp client middleware: sends tweepy's requests to `api_url`, keeps X's per-endpoint rate budgets, maps errors.

    OAuth 1.0a signatures cover the api.twitter.com URL tweepy signed, which is what a proxy at
    `api_url` forwards to, so moving the request after signing keeps it valid.
    """

    def __init__(self, name: str, api_url: str) -> None:
        self.name = name
        self.base = URL(api_url.rstrip("/"))
        # X limits each endpoint separately (x-rate-limit-* per endpoint), so one budget each.
        self.budgets: dict[str, HeaderBudget] = {}

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Check the endpoint's budget, redirect, send; raise the connector error for a non-2xx answer."""
        what = f"{self.name}: {request.method} {request.url.path}"
        # X limits each endpoint, not each id: /2/dm_conversations/:id/messages shares one window.
        budget = self.budgets.setdefault(f"{request.method} {_ID_SEGMENT.sub('/:id', request.url.path)}", HeaderBudget())
        budget.check(time.time())
        self._redirect(request)
        response = await handler(request)
        # The budget learns from answers that got through; a 429 carries its reset to the core
        # with the error, and the core schedules the retry for then.
        if response.status != 429:
            budget.update(response.headers, time.time())
        if 200 <= response.status < 300:
            return response
        body = await response.text(errors="replace")
        error = error_for(response.status, response.headers, body, what)
        if isinstance(error, AuthError) and response.status == 403 and request.method != "GET":
            # X answers 403 to a write it refuses (duplicate text, a conversation we may not join,
            # DMs closed): the reply is refused, the credentials are fine (they fail with 401).
            error = PermanentError(str(error))
        raise error or PermanentError(f"{what} answered HTTP {response.status}")

    def _redirect(self, request: ClientRequest) -> None:
        url = request.url
        if self.base == TWEEPY_HOST or (url.scheme, url.host) != ("https", TWEEPY_HOST.host):
            return
        request.url = URL.build(
            scheme=self.base.scheme,
            user=self.base.raw_user,
            password=self.base.raw_password,
            host=self.base.raw_host or "",
            port=self.base.explicit_port,
            path=self.base.raw_path.rstrip("/") + url.raw_path,
            query_string=url.raw_query_string,
            encoded=True,
        )
        request.headers[hdrs.HOST] = request.url.host_port_subcomponent or ""


def weighted_length(text: str) -> int:
    """The length X counts for a post: links 23, most non-Latin characters and emoji 2 (twitter-text v3)."""
    text = _URL.sub("x" * 23, unicodedata.normalize("NFC", text))
    total = 0
    for char in text:
        point = ord(char)
        if point in _WEIGHTLESS:
            continue
        total += 1 if any(low <= point <= high for low, high in _LIGHT_RANGES) else 2
    return total


def _entries(body: dict[str, Any], what: str) -> list[Any]:
    # X leaves `data` out of an empty page.
    data = body.get("data", [])
    if not isinstance(data, list):
        raise PermanentError(f"{what}: `data` is a {type(data).__name__}, expected a list")
    return data


def _users(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    includes = body.get("includes")
    users = includes.get("users") if isinstance(includes, dict) else None
    if not isinstance(users, list):
        return {}
    return {str(u["id"]): u for u in users if isinstance(u, dict) and "id" in u}


def _next_token(body: dict[str, Any]) -> str | None:
    meta = body.get("meta")
    token = meta.get("next_token") if isinstance(meta, dict) else None
    return token if isinstance(token, str) and token else None


def _id_of(entry: Any) -> str | None:
    value = entry.get("id") if isinstance(entry, dict) else None
    return value if isinstance(value, str) and value.isdigit() else None


def _newer(current: str | None, candidate: str) -> str:
    return candidate if current is None or int(candidate) > int(current) else current


def _references(tweet: dict[str, Any]) -> list[dict[str, Any]]:
    refs = tweet.get("referenced_tweets")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _timestamp(value: Any) -> datetime:
    moment = datetime.fromisoformat(_text(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {value!r} has no zone")
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+01:00: a skip like any other bad field, not a failed page
        raise ValueError(f"timestamp {value!r} is out of range") from None


def _x_id(value: Any) -> str:
    """An X id: a snowflake, digits only (str or int on the wire)."""
    text = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else ""
    if not text.isdigit():
        raise ValueError(f"id {str(value)[:40]!r} is not an X id")
    return text


def _field(data: Any, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value is not None else None


def _status_url(username: Any, tweet_id: str) -> str:
    if isinstance(username, str) and username:
        return f"https://x.com/{username}/status/{tweet_id}"
    return f"https://x.com/i/web/status/{tweet_id}"


def _dm_conversation(target: ReplyTarget) -> str:
    conversation = target.reply_to.get("dm_conversation_id")
    if not isinstance(conversation, str) or not conversation:
        raise PermanentError(f"DM {target.external_id} has no dm_conversation_id to answer in")
    return conversation


def _describe_id(entry: Any) -> str:
    value = entry.get("id") if isinstance(entry, dict) else None
    return repr(str(value)[:40]) if value is not None else "without an id"


def _problem(exc: Exception) -> str:
    return f"missing {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
