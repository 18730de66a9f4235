"""`reddit`: the account's inbox (mentions, comment replies, private messages) and brand talk in chosen subreddits."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from inbox.connector import (
    AuthError,
    Clock,
    Connector,
    ConnectorSettings,
    Kind,
    Page,
    PermanentError,
    RateLimited,
    RawItem,
    ReplyTarget,
    SentReply,
    wall_clock,
)
from inbox.connectors.kit.auth import BearerToken, basic, token_from
from inbox.connectors.kit.http import Response, VendorClient
from inbox.connectors.kit.paging import PageGuard
from inbox.connectors.kit.text import same_reply
from inbox.connectors.kit.threads import ThreadCache

log = logging.getLogger(__name__)

API_URL = "https://oauth.reddit.com"
AUTH_URL = "https://www.reddit.com"
WEB_URL = "https://www.reddit.com"
# How far up a comment chain we look for the start of a conversation.
MAX_THREAD_DEPTH = 8


class RedditSettings(ConnectorSettings):
    """A "script" app of the brand's account: client id and secret, the account's username and password."""

    type: str = "reddit"
    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    username: str = Field(min_length=1)
    password: SecretStr
    # Reddit asks for "<platform>:<app id>:<version> (by /u/<username>)" and throttles generic agents.
    user_agent: str = Field(min_length=1)
    # The token host; unset: www.reddit.com, or api_url itself when api_url points elsewhere (a proxy or a fake).
    auth_url: str | None = None
    # Subreddits watched for posts and comments naming the brand (without "r/").
    subreddits: list[str] = Field(default_factory=list)
    # Words that name the brand in those subreddits (case-insensitive, whole words).
    brand_terms: list[str] = Field(default_factory=list)
    # How far back the very first poll looks.
    first_poll_hours: float = Field(default=24, ge=0)
    max_reply_chars: int = Field(default=10_000, gt=0)
    page_size: int = Field(default=100, ge=1, le=100)

    @field_validator("subreddits")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        names = [re.sub(r"^/?r/", "", v.strip()) for v in value]
        bad = [n for n in names if not re.fullmatch(r"[A-Za-z0-9_]{2,21}", n)]
        if bad:
            raise ValueError(f"not subreddit names: {bad}")
        return names

    @model_validator(mode="after")
    def _terms(self) -> RedditSettings:
        if self.subreddits and not [t for t in self.brand_terms if t.strip()]:
            raise ValueError("subreddits need brand_terms: the words that name the brand there")
        return self


class Mark(BaseModel):
    """The newest thing seen in one listing."""

    name: str
    created_utc: float


class RedditCursor(BaseModel):
    """Newest thing seen per listing: "inbox", "posts", "comments"."""

    marks: dict[str, Mark] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Source:
    key: str
    path: str
    params: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class _Known:
    thread: str
    ours: bool


class _Skip(Exception):
    """One thing that cannot be mapped."""


class RedditConnector(Connector[RedditSettings, RedditCursor]):
    """Polls the inbox and the watched subreddits with an OAuth2 password-grant token; replies with /api/comment."""

    type = "reddit"

    def __init__(self, settings: RedditSettings, *, clock: Clock = wall_clock) -> None:
        super().__init__(settings, clock=clock)
        self.max_reply_chars = settings.max_reply_chars
        api_url = (settings.api_url or API_URL).rstrip("/")
        auth_url = settings.auth_url or (api_url if api_url != API_URL else AUTH_URL)
        agent = {"User-Agent": settings.user_agent}
        self.client = VendorClient(settings.name, api_url, headers=agent)
        self.auth = VendorClient(settings.name, auth_url, headers={**agent, "Authorization": basic(settings.client_id, settings.client_secret)})
        # Renewed on the API client's clock (the one its rate budget reads), a minute before Reddit says it expires.
        self.token = BearerToken(renew=self._password_grant, clock=lambda: self.client.clock(), scheme="bearer")
        self._me = settings.username.lower()
        self._mention = re.compile(rf"(?<![\w/])/?u/{re.escape(settings.username)}\b", re.IGNORECASE)
        terms = [t.strip() for t in settings.brand_terms if t.strip()]
        self._brand = re.compile(r"\b(?:" + "|".join(re.escape(t) for t in terms) + r")\b", re.IGNORECASE) if terms else None
        self._threads: ThreadCache[_Known] = ThreadCache()

    # -- fetch ------------------------------------------------------------------------------------------------------

    async def fetch(self, cursor: RedditCursor | None) -> AsyncIterator[Page[RedditCursor]]:
        """Each listing walked back from the newest thing to its mark; its new mark is committed once it is done."""
        marks = dict(cursor.marks) if cursor else {}
        for source in self._sources():
            mark = marks.get(source.key)
            newest: Mark | None = None
            async for things, top in self._walk(source, mark):
                newest = newest or top
                yield Page(await self._items(things, source))
            # Never backwards: with the mark's thing deleted, the newest thing left may be older than it.
            if newest is not None and newest != mark and (mark is None or newest.created_utc >= mark.created_utc):
                marks[source.key] = newest
                yield Page([], RedditCursor(marks=dict(marks)))

    def _sources(self) -> list[_Source]:
        sources = [_Source("inbox", "/message/inbox", {"mark": "false"})]
        if self.settings.subreddits:
            subs = "+".join(self.settings.subreddits)
            sources += [_Source("posts", f"/r/{subs}/new", {}), _Source("comments", f"/r/{subs}/comments", {})]
        return sources

    async def _walk(self, source: _Source, mark: Mark | None) -> AsyncIterator[tuple[list[Any], Mark | None]]:
        """Pages of things newer than `mark` (newest first), each with the newest thing of its page."""
        # Listings are newest first; `after` pages back. `before` would page forward but answers nothing once the
        # thing it names is deleted, so the walk goes back to the mark (by name, or by time if it is gone).
        horizon = mark.created_utc if mark else self.clock().timestamp() - self.settings.first_poll_hours * 3600
        guard = PageGuard(f"{self.name}: {source.path}")
        after: str | None = None
        while True:
            params = {**source.params, "limit": str(self.settings.page_size)}
            if after:
                params["after"] = after
            children, next_after = self._listing((await self._call("GET", source.path, params=params)).data, source.path)
            fresh, reached, passed = [], False, False
            for child in children:
                stamp = _mark(child)
                if passed or (stamp is not None and mark is not None and stamp.name == mark.name):
                    reached = passed = True  # the mark itself, and everything listed after it, was seen
                elif stamp is not None and stamp.created_utc < horizon:
                    reached = True  # older than the mark (it may be deleted); the page is scanned in case of disorder
                else:
                    fresh.append(child)
            yield fresh, next((m for m in map(_mark, children) if m is not None), None)
            if reached or not next_after or not children:
                return
            after = guard.next(next_after)

    def _listing(self, data: Any, path: str) -> tuple[list[Any], str | None]:
        if not isinstance(data, dict) or data.get("kind") != "Listing" or not isinstance(data.get("data"), dict):
            raise PermanentError(f"{self.name}: {path}: expected a Listing, got {type(data).__name__}")
        children = data["data"].get("children")
        if not isinstance(children, list):
            raise PermanentError(f"{self.name}: {path}: the Listing has no children list")
        after = data["data"].get("after")
        return children, after if isinstance(after, str) and after else None

    async def _items(self, things: list[Any], source: _Source) -> list[RawItem]:
        items = []
        # Oldest first, so a chain inside one page finds its parent already mapped.
        for thing in reversed(things):
            try:
                item = await self._item(thing, source)
            except _Skip as exc:
                data = thing.get("data") if isinstance(thing, dict) else None
                name = data.get("name") if isinstance(data, dict) else None
                log.warning("%s: skipped %s thing %r: %s", self.name, source.key, str(name)[:40], exc)
                continue
            if item is not None:
                items.append(item)
        return items

    async def _item(self, thing: Any, source: _Source) -> RawItem | None:
        try:
            kind, data = thing["kind"], thing["data"]
            name, author = _string(data["name"]), _string(data["author"])
            posted_at = datetime.fromtimestamp(_number(data["created_utc"]), UTC)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise _Skip(f"unexpected shape ({type(exc).__name__}: {exc})") from None
        mine = author.lower() == self._me
        if kind == "t4":
            body = _optional(data.get("body"))
            first = data.get("first_message_name")
            subject = _optional(data.get("subject"))
            text = f"{subject}\n\n{body}" if subject and not first else body
            thread = first if isinstance(first, str) and first else name
            url = f"{WEB_URL}/message/messages/{data.get('id') or name[3:]}"
            item_kind = Kind.DM
        elif kind == "t1":
            text = _optional(data.get("body"))
            if source.key != "inbox" and not self._names_brand(text):
                return None
            thread = await self._thread_of(data)
            link = data.get("context") or data.get("permalink")
            url = f"{WEB_URL}{link}" if isinstance(link, str) and link else None
            item_kind = Kind.MENTION if data.get("type") == "username_mention" else Kind.COMMENT
        elif kind == "t3":
            text = "\n\n".join(p for p in (_optional(data.get("title")), _optional(data.get("selftext"))) if p)
            if source.key != "inbox" and not self._names_brand(text):
                return None
            thread = name
            link = data.get("permalink")
            url = f"{WEB_URL}{link}" if isinstance(link, str) and link else None
            item_kind = Kind.MENTION
        else:
            raise _Skip(f"unknown kind {kind!r}")
        self._remember(name, thread, ours=mine)
        return RawItem(
            external_id=name,
            text=text,
            posted_at=posted_at,
            kind=item_kind,
            author_handle=author,
            thread_id=thread,
            url=url,
            reply_to={"thing_id": name, "kind": kind, "subreddit": data.get("subreddit"), "parent_id": data.get("parent_id")},
            from_brand=mine,
            is_repost=bool(data.get("crosspost_parent")),
        )

    def _names_brand(self, text: str) -> bool:
        return bool(self._brand and self._brand.search(text)) or bool(self._mention.search(text))

    # -- threads ----------------------------------------------------------------------------------------------------

    async def _thread_of(self, data: Mapping[str, Any]) -> str:
        """A comment's conversation: the topmost customer comment of the unbroken chain around us."""
        root = str(data["name"])
        node: Mapping[str, Any] = data
        for _ in range(MAX_THREAD_DEPTH):
            parent = _comment_id(node.get("parent_id"))
            if parent is None:
                break
            if parent in self._threads:
                return self._threads[parent].thread  # a stored item or our reply: join its conversation
            above = await self._info(parent)
            if above is None:
                break
            if self._is_me(above):
                node = above  # our comment: the conversation goes on above it
                continue
            if self._mention.search(_optional(above.get("body"))) or self._names_brand(_optional(above.get("body"))):
                root, node = str(above["name"]), above
                continue
            # A customer comment that does not name us belongs to the conversation only when it answers us.
            grand = _comment_id(above.get("parent_id"))
            if grand is None:
                break
            if grand in self._threads:
                known = self._threads[grand]
                if known.ours:
                    return known.thread
                break
            grand_thing = await self._info(grand)
            if grand_thing is None or not self._is_me(grand_thing):
                break
            root, node = str(above["name"]), grand_thing
        return root

    async def _info(self, fullname: str) -> Mapping[str, Any] | None:
        try:
            response = await self._call("GET", "/api/info", params={"id": fullname})
            children, _ = self._listing(response.data, "/api/info")
        except PermanentError as exc:
            log.debug("%s: cannot look up %s (%s)", self.name, fullname, exc)
            return None
        for child in children:
            if isinstance(child, dict) and isinstance(child.get("data"), dict) and child["data"].get("name") == fullname:
                return child["data"]
        return None

    def _is_me(self, data: Mapping[str, Any]) -> bool:
        return str(data.get("author", "")).lower() == self._me

    def _remember(self, name: str, thread: str, *, ours: bool) -> None:
        self._threads.remember(name, _Known(thread, ours))

    # -- replies ----------------------------------------------------------------------------------------------------

    async def reply(self, target: ReplyTarget, text: str) -> SentReply:
        """A comment under the comment or post, or a message in the private conversation (both are /api/comment)."""
        response = await self._call(
            "POST", "/api/comment", data={"api_type": "json", "thing_id": target.external_id, "text": text}
        )
        payload = response.data.get("json") if isinstance(response.data, dict) else None
        if not isinstance(payload, dict):
            raise PermanentError(f"{self.name}: /api/comment answered no json object")
        _raise_for(payload.get("errors"))
        try:
            created = payload["data"]["things"][0]["data"]
            name = _string(created["name"])
        except (KeyError, IndexError, TypeError) as exc:
            raise PermanentError(f"{self.name}: /api/comment answered no new thing ({type(exc).__name__})") from None
        self._remember(name, target.thread_id, ours=True)
        link = created.get("permalink")
        return SentReply(name, f"{WEB_URL}{link}" if isinstance(link, str) and link else None)

    async def find_reply(self, target: ReplyTarget, text: str) -> SentReply | None:
        """Our recent comments (or sent messages, for a message) answering the target with this text."""
        path = "/message/sent" if target.external_id.startswith("t4_") else f"/user/{self.settings.username}/comments"
        params = {"limit": "100"} if path == "/message/sent" else {"limit": "100", "sort": "new"}
        children, _ = self._listing((await self._call("GET", path, params=params)).data, path)
        for child in children:
            data = child.get("data") if isinstance(child, dict) else None
            if not isinstance(data, dict) or data.get("parent_id") != target.external_id or not self._is_me(data):
                continue
            if same_reply(data.get("body"), text) and isinstance(data.get("name"), str):
                self._remember(data["name"], target.thread_id, ours=True)
                link = data.get("permalink")
                return SentReply(data["name"], f"{WEB_URL}{link}" if isinstance(link, str) and link else None)
        return None

    # -- auth -------------------------------------------------------------------------------------------------------

    async def check(self) -> str:
        """A token from the password grant, then /api/v1/me."""
        data = (await self._call("GET", "/api/v1/me")).data
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise PermanentError(f"{self.name}: /api/v1/me answered no account")
        if data["name"].lower() != self._me:
            raise PermanentError(f"{self.name}: the token is for u/{data['name']}, not u/{self.settings.username}")
        return f"u/{data['name']} via {urlsplit(self.client.base_url).netloc}"

    async def _call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, data: Mapping[str, str] | None = None
    ) -> Response:
        query = {**(params or {}), "raw_json": "1"}
        await self.token.value()  # a refused password grant is the account's problem, whatever the path
        try:
            return await self.token.request(self.client, method, path, params=query, data=data)
        except AuthError:
            # An expired or revoked token answers 401: the refused token was dropped; ask for a new one once, then believe the answer.
            try:
                return await self.token.request(self.client, method, path, params=query, data=data)
            except AuthError as exc:
                if path.startswith("/r/"):
                    # The account itself works (the token was just granted): the subreddit is private or banned.
                    raise PermanentError(f"{self.name}: {path} is not readable by this account: {exc}") from exc
                raise

    async def _password_grant(self) -> tuple[str, float]:
        form = {"grant_type": "password", "username": self.settings.username, "password": self.settings.password.get_secret_value()}
        response = await self.auth.request("POST", "/api/v1/access_token", data=form)
        if isinstance(response.data, dict) and "error" in response.data:
            # A wrong password is HTTP 200 with {"error": "invalid_grant"}; accounts with 2FA cannot use this grant.
            raise AuthError(f"reddit refused the password grant for u/{self.settings.username}: {response.data['error']}")
        return token_from(response, f"{self.name}: the token endpoint")

    async def close(self) -> None:
        """Close both HTTP sessions."""
        await self.client.close()
        await self.auth.close()


def _raise_for(errors: Any) -> None:
    """/api/comment reports refusals as [code, message, field] triples in json.errors."""
    if not errors:
        return
    if not isinstance(errors, list):
        raise PermanentError(f"reddit refused the reply: {errors!r}"[:300])
    codes = [e for e in errors if isinstance(e, list) and e]
    for error in codes:
        if error[0] == "RATELIMIT":
            message = str(error[1]) if len(error) > 1 else ""
            raise RateLimited(f"reddit rate-limits replies: {message}", _wait_from(message))
    described = "; ".join(": ".join(str(p) for p in e[:2]) for e in codes) or repr(errors)
    raise PermanentError(f"reddit refused the reply: {described}"[:300])


def _wait_from(message: str) -> float | None:
    """Seconds from 'try again in 9 minutes' / 'Take a break for 30 seconds'."""
    match = re.search(r"(\d+)\s*(millisecond|second|minute|hour)", message)
    if not match:
        return None
    unit = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}[match.group(2)]
    return int(match.group(1)) * unit


def _mark(thing: Any) -> Mark | None:
    data = thing.get("data") if isinstance(thing, dict) else None
    if not isinstance(data, dict):
        return None
    name, created = data.get("name"), data.get("created_utc")
    if not isinstance(name, str) or not isinstance(created, int | float) or isinstance(created, bool):
        return None
    return Mark(name=name, created_utc=float(created))


def _comment_id(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith("t1_") else None


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"expected a non-empty string, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return float(value)


def _optional(value: Any) -> str:
    return value if isinstance(value, str) else ""
