"""XRPC, the AT Protocol's HTTP API, over the `atproto` library: an account's session, its calls and listings.

The library keeps the session (login, the refresh before the access token expires, the session string); this module
adds what a connector needs around it: the session kept sealed between runs, one login again when a call finds it
refused, the library's errors as the connector's three, the server's rate budget, and cursor-paged listings read raw
(so one misshapen entry is skipped rather than the page refused). Also: strong refs, and graphemes as lexicons count
them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

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
from atproto_core.exceptions import AtProtocolError
from pydantic import SecretStr

from inbox.connector import (
    AuthError,
    Clock,
    ConnectorError,
    PermanentError,
    RateLimited,
    TransientError,
    wall_clock,
)
from inbox.connectors.kit.http import HeaderBudget
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import OptionalText, Payload, page_of
from inbox.connectors.kit.seal import Seal
from inbox.logs import SECRETS

log = logging.getLogger(__name__)
T = TypeVar("T")
L = TypeVar("L", bound="Paged")

# Errors that mean the session (not the account) is no longer good: log in again once, then give up.
_SESSION_REFUSED = frozenset({"AuthenticationRequired", "InvalidToken", "ExpiredToken"})
# What a proxied service answers a token whose scope does not reach it (Bluesky's chat, to an app password without DMs).
_OUT_OF_SCOPE = ("Bad token scope", "Bad token method")
# The access token's scope: logged in with the account's main password, or with an app password (no DMs).
MAIN_PASSWORD = "com.atproto.access"
APP_PASSWORD = "com.atproto.appPass"


class OutOfScope(AuthError):
    """A proxied service refused the token's scope (an app password made without access to it)."""


class NotServed(PermanentError):
    """The server does not serve this method (a PDS without the chat service or the AppView's views)."""


class Paged(Payload):
    """A listing's page: its entries (declared by each listing), and the cursor to the next page when there is one."""

    cursor: OptionalText = None


def graphemes(text: str) -> int:
    """Extended grapheme clusters (UAX #29), as the lexicons' maxGraphemes counts: 🇫🇷 is one."""
    return len(regex.findall(r"\X", text))


def strong_ref(ref: Any, fallback_uri: str) -> models.ComAtprotoRepoStrongRef.Main:
    """A post's (uri, cid) reference from what an item kept of it; a post without a cid cannot be answered."""
    uri = ref.get("uri") if isinstance(ref, dict) else None
    cid = ref.get("cid") if isinstance(ref, dict) else None
    if not isinstance(cid, str) or not cid:
        raise PermanentError(f"the post {uri or fallback_uri} has no cid to reply to")
    return models.ComAtprotoRepoStrongRef.Main(uri=uri or fallback_uri, cid=cid)


class _Client(AsyncClient):  # type: ignore[misc]  # atproto ships no types: its client is Any to mypy
    """atproto's client reading the connector's clock, so token expiry and post times follow the injected clock."""

    def __init__(self, base_url: str | None = None, request: AsyncRequest | None = None, clock: Clock = wall_clock):
        super().__init__(base_url, request=request)
        self.clock = clock

    def get_current_time(self) -> datetime:
        """The injected clock (atproto refreshes the session 15 minutes before the access token expires by it)."""
        return self.clock()


class XrpcAccount:
    """One account on a PDS: its session (live, else the stored one, else a new one), and calls made with it."""

    def __init__(
        self,
        name: str,
        api_url: str,
        handle: str,
        password: SecretStr,
        *,
        clock: Clock = wall_clock,
        seal: Seal | None = None,
    ) -> None:
        self.name, self.api_url, self.handle, self.password = name, api_url, handle, password
        self.clock = clock
        self.client = _Client(api_url, AsyncRequest(timeout=30.0), clock)
        self.client.on_session_change(self._session_changed)
        self.budget = HeaderBudget()
        self.did: str | None = None
        self.scope: str | None = None  # the access token's, once logged in
        self._seal = seal  # keeps the session between runs when given
        self._session: str | None = None  # the live session, exported
        self._login_lock = asyncio.Lock()

    # -- the session --------------------------------------------------------------------------------------------------

    async def _session_changed(self, event: SessionEvent, session: Session) -> None:
        SECRETS.add(session.access_jwt, session.refresh_jwt, runtime=True)
        self._session = session.export()
        self.did = session.did
        try:
            self.scope = session.access_jwt_payload.scope
        except AtProtocolError:
            self.scope = None
        if event is SessionEvent.CREATE:
            log.info("%s: logged in as %s (a new session)", self.name, session.handle)

    def sealed(self) -> str | None:
        """The live session sealed for the cursor store; None when sessions are not kept."""
        if self._seal is None or self._session is None:
            return None
        return self._seal.seal(self._session)

    def _opened(self, sealed: str | None) -> str | None:
        if not sealed or self._seal is None:
            return None
        if (session := self._seal.open(sealed)) is None:
            log.info("%s: the stored session was sealed with another app password; logging in anew", self.name)
        return session

    async def ready(self, stored: str | None = None) -> str:
        """The account's DID, with a session: the live one, else the stored one, else a new one (createSession)."""
        async with self._login_lock:
            if self._session is None and (session := self._opened(stored)):
                assert self._seal is not None and stored is not None
                try:
                    await self.client.login(session_string=session, fetch_bsky_profile=False)
                    # The cursor keeps this sealed form while the session stands; a refreshed one is sealed anew.
                    self._seal.known(session, stored)
                except (AtProtocolError, ValueError) as exc:
                    log.info("%s: the stored session cannot be used (%s); logging in anew", self.name, exc)
                    self._session = None
            if self._session is None:
                await self._login()
            assert self.did is not None
            return self.did

    async def _login(self) -> None:
        try:
            await self.client.login(self.handle, self.password.get_secret_value(), fetch_bsky_profile=False)
        except RequestErrorBase as exc:
            error = self._error(exc, "createSession")
            if isinstance(error, AuthError):
                raise AuthError(f"{self.name}: {self.handle} cannot log in: {_detail(exc)}{_hint(exc)}") from exc
            raise error from exc

    async def _relogin(self, refused: str | None) -> None:
        async with self._login_lock:
            if self._session != refused:
                return  # a call beside this one has already logged in again
            self._session = None
            await self._login()

    async def whoami(self) -> tuple[str, str]:
        """(handle, DID) of the session's account by getSession; an account that is not active is refused."""
        await self.ready()
        data = await self.query("com.atproto.server.getSession", None)
        if not isinstance(data, dict) or not data.get("did"):
            raise PermanentError(f"{self.name}: getSession answered no account")
        if data.get("active") is False:
            raise AuthError(f"{self.name}: the account {data.get('handle')} is not active ({data.get('status')})")
        return str(data.get("handle")), str(data["did"])

    # -- calls --------------------------------------------------------------------------------------------------------

    async def call(self, what: str, call: Callable[[], Awaitable[T]], *, proxied: bool = False) -> T:
        """One XRPC call with a session: a refused session is replaced once, errors become the connector's three.

        `proxied`: the PDS forwards the call to another service (atproto-proxy), whose scope refusal is `OutOfScope`.
        """
        await self.ready()
        for attempt in (1, 2):
            self.budget.check(self.clock().timestamp())
            used = self._session
            try:
                result = await call()
            except RequestErrorBase as exc:
                if exc.response is not None and exc.response.status_code != 429:
                    self.budget.update(exc.response.headers, self.clock().timestamp())
                if attempt == 1 and _session_refused(exc) and not (proxied and _out_of_scope(exc)):
                    log.info("%s: %s refused the session (%s); logging in again", self.name, what, _detail(exc))
                    await self._relogin(used)
                    continue
                raise self._error(exc, what, proxied=proxied) from exc
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

    def _error(self, exc: RequestErrorBase, what: str, *, proxied: bool = False) -> ConnectorError:
        message = f"{self.name}: {what} failed: {_detail(exc)}"
        response = exc.response
        status = response.status_code if response is not None else None
        if is_method_not_served(exc):
            return NotServed(message, status=status)
        if isinstance(exc, RateLimitExceededError):
            wait = exc.retry_after
            if wait is None and exc.reset_at is not None:
                wait = max(0.0, exc.reset_at.timestamp() - self.clock().timestamp())
            return RateLimited(message, wait, status=429)
        if proxied and _out_of_scope(exc):
            return OutOfScope(message, status=status)
        if isinstance(exc, UnauthorizedError) or _session_refused(exc):
            return AuthError(message, status=status)
        if isinstance(exc, NetworkError) or status is None or status >= 500 or status == 408:
            return TransientError(message, status=status)
        return PermanentError(message, status=status)

    async def query(self, nsid: str, params: Any, *, proxy: str | None = None) -> Any:
        """A query's raw JSON body (parsed by the caller, so a bad entry is skipped rather than the page refused)."""
        headers = {"atproto-proxy": proxy} if proxy else None
        response = await self.call(
            nsid, lambda: self.client.invoke_query(nsid, params=params, headers=headers), proxied=proxy is not None
        )
        return response.content

    async def pages(
        self, nsid: str, model: type[L], params: Callable[[str | None], Any], *, proxy: str | None = None
    ) -> AsyncIterator[L]:
        """Each page of a cursor-paged listing, refusing a cursor that comes back (the caller may stop early)."""
        what = f"{self.name}: {nsid.rsplit('.', 1)[-1]}"

        async def request(cursor: str | None) -> L:
            return page_of(model, await self.query(nsid, params(cursor), proxy=proxy), what)

        async for page, _last in paged(what, request, lambda page: page.cursor):
            yield page

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.request.close()


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


def _out_of_scope(exc: RequestErrorBase) -> bool:
    content = exc.response.content if exc.response is not None else None
    return isinstance(content, XrpcError) and any(text in (content.message or "") for text in _OUT_OF_SCOPE)
