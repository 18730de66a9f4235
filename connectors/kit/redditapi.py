"""Reddit's API as a client: a script app's token (the password grant, renewed, asked again once when refused),
listings, things looked up by name, comments and messages posted with Reddit's refusals, the account; payload shapes;
no mapping."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, SecretStr

from inbox.connector import AuthError, PermanentError, RateLimited
from inbox.connectors.kit.auth import BearerToken, basic, password_grant
from inbox.connectors.kit.http import Response, VendorClient, seconds_in
from inbox.connectors.kit.parse import EpochTime, Name, Number, OptionalText, Payload, Text, fitting, one_of, page_of

log = logging.getLogger(__name__)

API_URL = "https://oauth.reddit.com"
AUTH_URL = "https://www.reddit.com"


class Node(Payload):
    """What a thread walk or a reply search reads of a comment or message."""

    name: Text
    author: OptionalText = None
    body: OptionalText = None
    parent_id: OptionalText = None
    permalink: OptionalText = None


class Data(Node):
    """A thing as an item needs it."""

    name: Name
    author: Name
    created_utc: EpochTime
    id: OptionalText = None
    subject: OptionalText = None
    title: OptionalText = None
    selftext: OptionalText = None
    first_message_name: OptionalText = None
    context: OptionalText = None
    type: OptionalText = None
    subreddit: Any = None
    parent_id: Any = None
    crosspost_parent: Any = None


class Thing(Payload):
    """A listed thing: its kind (t1 comment, t3 post, t4 message) and its data."""

    kind: Text
    data: Data


class Child(Payload):
    """A listed thing as a lookup reads it."""

    data: Node


class Stamp(Payload):
    """A thing's name and creation time (epoch seconds), read before the rest to place it in a walk."""

    name: Text
    created_utc: Number


class Children(Payload):
    """A listing's things, kept raw so a misshapen one is skipped alone, and the `after` of the next page."""

    children: list[Any]
    after: OptionalText = None


class _Listing(Payload):
    kind: Literal["Listing"]
    data: Children


class _Comment(Payload):
    errors: Any = None
    data: Any = None


class _CommentAnswer(Payload):
    json_: _Comment = Field(alias="json")


class _Things(Payload):
    things: list[Child] = Field(min_length=1)


class Account(Payload):
    """The account the token belongs to."""

    name: Text


class RedditApi(VendorClient):
    """The OAuth API (`api_url`, or oauth.reddit.com) with a token from the token host (`auth_url`, or www.reddit.com;
    `api_url` itself when that points elsewhere, a proxy or a fake)."""

    def __init__(
        self,
        name: str,
        api_url: str | None,
        auth_url: str | None,
        user_agent: str,
        client: tuple[str, SecretStr],
        login: tuple[str, SecretStr],
    ) -> None:
        api_url = (api_url or API_URL).rstrip("/")
        # Reddit asks for its own User-Agent format and throttles generic agents.
        agent = {"User-Agent": user_agent}
        super().__init__(name, api_url, headers=agent)
        auth_headers = {**agent, "Authorization": basic(*client)}
        self.auth = VendorClient(name, auth_url or (api_url if api_url != API_URL else AUTH_URL), headers=auth_headers)
        # A wrong password is HTTP 200 with {"error": "invalid_grant"}; accounts with 2FA cannot use this grant.
        refused = f"reddit refused the password grant for u/{login[0]}"
        grant = password_grant(self.auth, "/api/v1/access_token", *login, refused)
        # Renewed on this client's clock (the one its rate budget reads), a minute before Reddit says it expires.
        self.token = BearerToken(renew=grant, clock=lambda: self.clock(), scheme="bearer")

    async def call(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, data: Mapping[str, str] | None = None
    ) -> Response:
        """One request with the token; a private subreddit's refusal is a PermanentError, not the account's."""
        query = {**(params or {}), "raw_json": "1"}
        await self.token.value()  # a refused password grant is the account's problem, whatever the path
        try:
            # An expired or revoked token answers 401: ask for a new one once, then believe the answer.
            return await self.token.request(self, method, path, params=query, data=data, renew_refused=True)
        except AuthError as exc:
            if path.startswith("/r/"):
                # The account itself works (the token was just granted): the subreddit is private or banned.
                raise PermanentError(f"{self.name}: {path} is not readable by this account: {exc}") from exc
            raise

    async def listing(self, path: str, params: Mapping[str, str]) -> Children:
        """One page of a listing (newest first)."""
        return page_of(_Listing, (await self.call("GET", path, params=params)).data, f"{self.name}: {path}").data

    async def info(self, fullname: str) -> Node | None:
        """A thing looked up by its full name (t1_...), or None when Reddit does not give it."""
        try:
            children = (await self.listing("/api/info", {"id": fullname})).children
        except PermanentError as exc:
            log.debug("%s: cannot look up %s (%s)", self.name, fullname, exc)
            return None
        return next((child.data for child in fitting(Child, children) if child.data.name == fullname), None)

    async def comment(self, thing_id: str, text: str) -> Node:
        """A comment under a comment or post, or a message in a private conversation (both are /api/comment)."""
        form = {"api_type": "json", "thing_id": thing_id, "text": text}
        answer = page_of(
            _CommentAnswer, (await self.call("POST", "/api/comment", data=form)).data, f"{self.name}: /api/comment"
        )
        _raise_for(answer.json_.errors)
        things = one_of(_Things, answer.json_.data)
        if isinstance(things, str):
            raise PermanentError(f"{self.name}: /api/comment answered no new thing ({things})")
        return things.things[0].data

    async def me(self) -> Account:
        """/api/v1/me: the account of the token."""
        return page_of(Account, (await self.call("GET", "/api/v1/me")).data, f"{self.name}: /api/v1/me")

    async def close(self) -> None:
        """Close the API's and the token host's sessions."""
        await super().close()
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
            raise RateLimited(f"reddit rate-limits replies: {message}", seconds_in(message))
    described = "; ".join(": ".join(str(p) for p in e[:2]) for e in codes) or repr(errors)
    raise PermanentError(f"reddit refused the reply: {described}"[:300])


def stamp_of(thing: Any) -> Stamp | None:
    """A listed thing's name and time, or None when it has none."""
    parsed = one_of(Stamp, thing.get("data") if isinstance(thing, dict) else None)
    return None if isinstance(parsed, str) else parsed


def name_of(thing: Any) -> Any:
    """A listed thing's name as sent, for a log line about it."""
    data = thing.get("data") if isinstance(thing, dict) else None
    return data.get("name") if isinstance(data, dict) else None


def comment_id(value: Any) -> str | None:
    """A comment's full name (t1_...), or None for anything else (a post, nothing)."""
    return value if isinstance(value, str) and value.startswith("t1_") else None
