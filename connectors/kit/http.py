"""Vendor HTTP, once for every connector: one session pool, status codes to the three errors, rate budgets."""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse, hdrs
from multidict import CIMultiDictProxy
from pydantic import AfterValidator, BaseModel
from yarl import URL

from inbox import safejson
from inbox.connector import AuthError, ConnectorError, PermanentError, RateBudget, RateLimited, TransientError
from inbox.connectors.kit.paging import paged
from inbox.connectors.kit.parse import page_of
from inbox.logs import SECRETS, redact

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

USER_AGENT = "cx-inbox/0.1 (+https://github.com/cx-inbox/cx-inbox)"
# Vendors answer a page in well under this; a hung connection must not hold a poll forever.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10)


def _absolute(value: str) -> str:
    if not value.startswith(("https://", "http://")) or not URL(value).host:
        raise ValueError("must be an absolute http(s) URL, e.g. https://api.twitter.com")
    return value


# A setting naming where the vendor's API is reached (a proxy, a fake): an absolute http(s) URL.
AbsoluteUrl = Annotated[str, AfterValidator(_absolute)]
# An id segment of a path (not the leading /2 version): endpoints are rate-limited as one, whatever the id.
_ID_SEGMENT = re.compile(r"(?<=.)/\d[\d-]*(?=/|$)")


class _Pool:
    """The connections of one event loop, shared by every vendor session on it."""

    def __init__(self) -> None:
        # No cap: a Mastodon stream holds its connection for hours, and polls must never queue behind streams.
        self.connector = aiohttp.TCPConnector(limit=0)
        self.sessions = 0


_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Pool] = weakref.WeakKeyDictionary()


def open_session(**options: Any) -> aiohttp.ClientSession:
    """A session on this event loop's shared connection pool; close it with `close_session`."""
    # A thousand accounts on one vendor then reuse a handful of kept-alive connections (one TLS handshake
    # each) instead of each opening its own after every idle keep-alive timeout.
    loop = asyncio.get_running_loop()
    pool = _POOLS.get(loop)
    if pool is None or pool.connector.closed:
        pool = _POOLS[loop] = _Pool()
    pool.sessions += 1
    return aiohttp.ClientSession(connector=pool.connector, connector_owner=False, **options)


async def close_session(session: aiohttp.ClientSession | None) -> None:
    """Close a session from `open_session`; the pool's connections close with its last session."""
    if session is None or session.closed:
        return
    connector = session.connector
    await session.close()
    pool = _POOLS.get(asyncio.get_running_loop())
    if pool is not None and connector is pool.connector:
        pool.sessions -= 1
        if pool.sessions <= 0:
            del _POOLS[asyncio.get_running_loop()]
            await pool.connector.close()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait, from Retry-After or a rate-limit reset header; None when the vendor does not say."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, _http_date(value) - now)
            except ValueError:
                pass
    reset = reset_from(headers, now)
    return None if reset is None else max(0.0, reset - now)


def seconds_in(message: str) -> float | None:
    """Seconds a vendor says to wait in words: 'try again in 9 minutes', 'Take a break for 30 seconds'."""
    match = re.search(r"(\d+)\s*(millisecond|second|minute|hour)", message)
    if not match:
        return None
    unit = {"millisecond": 0.001, "second": 1, "minute": 60, "hour": 3600}[match.group(2)]
    return int(match.group(1)) * unit


def error_for(status: int, headers: Mapping[str, str], body: str, what: str) -> ConnectorError | None:
    """The error a response stands for, or None for a success."""
    if status < 400:
        return None
    # Redacted before it is cut: a vendor (or a proxy) may echo the request's credentials in its error body.
    snippet = redact(" ".join(body.split()))[:300]
    message = redact(f"{what} answered HTTP {status}") + (f": {snippet}" if snippet else "")
    if status in (401, 403):
        return AuthError(message, status=status)
    if status == 429:
        # Told apart from other transient errors: routine on small API tiers, waited out, not a failure.
        return RateLimited(message, retry_after(headers), status=status)
    if status == 408 or status >= 500:
        return TransientError(message, retry_after(headers), status=status)
    return PermanentError(message, status=status)


class HeaderBudget(RateBudget):
    """A rate budget kept from the vendor's own response headers, so we stop before a 429."""

    def update(self, headers: Mapping[str, str], now: float) -> None:
        """Read the standard and vendor-specific rate headers of a response."""
        remaining = _first(headers, "x-rate-limit-remaining", "x-ratelimit-remaining", "ratelimit-remaining")
        if remaining is None and (combined := headers.get("X-Rate-Limit")):
            # App Store Connect: "user-hour-lim:3500;user-hour-rem:500;"
            match = re.search(r"user-hour-rem:(\d+)", combined)
            remaining = match.group(1) if match else None
            if remaining is not None:
                self.reset_at = now + 3600
        if remaining is not None:
            try:
                self.remaining = float(remaining)
            except ValueError:
                return
        reset = reset_from(headers, now)
        if reset is not None:
            self.reset_at = reset


def reset_from(headers: Mapping[str, str], now: float) -> float | None:
    """The reset time as epoch seconds: vendors send epoch seconds, seconds from now, or ISO 8601."""
    value = _first(headers, "x-rate-limit-reset", "x-ratelimit-reset", "ratelimit-reset")
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    # Epoch seconds (X) are large; Reddit and the IETF draft send seconds from now.
    return number if number > 1_000_000_000 else now + number


@dataclass(frozen=True, slots=True)
class Response:
    """A vendor answer, already checked: status, headers and parsed JSON (None for an empty body)."""

    status: int
    headers: CIMultiDictProxy[str]
    data: Any


class VendorClient:
    """One aiohttp session per connector (on the shared connection pool) with its base URL, auth headers and rate budget."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json", **(headers or {})}
        self.timeout = timeout
        self.clock = clock
        self.budget = HeaderBudget()
        self._session: aiohttp.ClientSession | None = None

    def url(self, path: str) -> str:
        """An absolute URL: `path` as is when absolute (e.g. a `next` link), else under the base URL."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Send one request; return the parsed answer or raise TransientError, AuthError or PermanentError."""
        self.budget.check(self.clock())
        url = self.url(path)
        what = redact(f"{self.name}: {method} {url.split('?')[0]}")  # a proxy's URL may carry a password
        sent = {**self.headers, **(headers or {})}
        SECRETS.add_request(sent, data)  # tokens granted at run time are as secret as configured ones
        try:
            async with self.session().request(
                method, url, params=params, json=json_body, data=data, headers=sent
            ) as response:
                body = await response.text(errors="replace")
                if response.status != 429:
                    # A 429's reset already travels with the TransientError to the poller, which waits it out.
                    self.budget.update(response.headers, self.clock())
                error = self.error(response.status, response.headers, body, what)
                if error is not None:
                    raise error
                return Response(response.status, response.headers, _parse(body, what))
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(redact(f"{what} failed: {type(exc).__name__}: {exc}")) from exc

    def error(self, status: int, headers: Mapping[str, str], body: str, what: str) -> ConnectorError | None:
        """The error an answer stands for, or None for a success; a vendor whose error bodies say more overrides it."""
        return error_for(status, headers, body, what)

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Response:
        """GET and parse."""
        return await self.request("GET", path, params=params)

    async def get_as(self, model: type[M], path: str, what: str, params: Mapping[str, Any] | None = None) -> M:
        """GET, its answer as `model`; an answer of another shape is a PermanentError naming `what`."""
        return await self.request_as(model, "GET", path, what, params=params)

    async def request_as(self, model: type[M], method: str, path: str, what: str, **options: Any) -> M:
        """One request (options as `request` takes them), its answer as `model`; another shape is a PermanentError."""
        return page_of(model, (await self.request(method, path, **options)).data, f"{self.name}: {what}")

    def session(self) -> aiohttp.ClientSession:
        """The connector's session, opened on first use."""
        if self._session is None or self._session.closed:
            self._session = open_session(timeout=self.timeout)
        return self._session

    async def close(self) -> None:
        """Close the session."""
        await close_session(self._session)


def path_of(link: str) -> str:
    """A vendor's absolute link (a `next` page) as a path and query for our base URL, which may be a proxy or a fake."""
    parts = urlsplit(link)
    return urlunsplit(("", "", parts.path, parts.query, ""))


def link_param(header: str | None, rel: str, param: str) -> str | None:
    """A numeric query parameter of one relation of a `Link` header (RFC 8288), e.g. min_id of rel="prev"."""
    for part in (header or "").split(","):
        target, _, attributes = part.partition(";")
        rels = [a.split("=", 1)[1].strip().strip('"') for a in attributes.split(";") if a.strip().startswith("rel=")]
        if rel in rels:
            values = parse_qs(urlsplit(target.strip().strip("<>")).query).get(param)
            if values and values[0].isdigit():
                return values[0]
    return None


def _parse(body: str, what: str) -> Any:
    if not body.strip():
        return None
    try:
        return safejson.loads(body)
    except ValueError as exc:
        raise PermanentError(f"{what} returned malformed JSON: {exc}") from exc


def _first(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def _http_date(value: str) -> float:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError) as exc:
        raise ValueError(value) from exc


class LibraryTransport:
    """A vendor's own client library (tweepy) on our pooled session: requests moved to `api_url`, a rate budget per endpoint, errors mapped.

    The library builds every URL on the vendor's host. Signatures (OAuth 1.0a) cover that URL, which is what a proxy
    at `api_url` forwards to, so moving the request after signing keeps it valid. Used as an aiohttp client middleware.
    """

    def __init__(
        self,
        name: str,
        vendor_url: str,
        api_url: str,
        *,
        refused_writes: bool = False,
        polled: tuple[str, ...] = (),
        client: Any = None,
    ) -> None:
        self.name = name
        self.vendor = URL(vendor_url)
        self.base = URL(api_url.rstrip("/"))
        # A vendor that answers 403 to a write it refuses (X: duplicate text, DMs closed); its credentials fail with 401.
        self.refused_writes = refused_writes
        # Vendors that limit each endpoint on its own (X's x-rate-limit-* per endpoint) get a budget each.
        self.budgets: dict[str, HeaderBudget] = {}
        # The endpoints ("GET /2/users/:id/mentions") a poll reads: their windows pace polls, the reply endpoints' do not.
        self.polled = polled
        # The library's client, handed our session as its `session` attribute before each call (tweepy's documented
        # way; without one it opens a session per request).
        self.client = client
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        """The session to hand the library, opened on first use (and again after a close)."""
        if self._session is None or self._session.closed:
            self._session = open_session(timeout=DEFAULT_TIMEOUT, middlewares=(self,))
        return self._session

    def poll_budgets(self) -> list[HeaderBudget]:
        """The budgets of the endpoints polls read (`polled`)."""
        return [budget for key, budget in self.budgets.items() if key in self.polled]

    async def call_as(self, model: type[M], what: str, request: Awaitable[Any]) -> M:
        """One library call, its answer as `model`; an answer of another shape is a PermanentError naming `what`."""
        return page_of(model, await self.call(what, request), f"{self.name}: {what}")

    def pages(
        self,
        model: type[M],
        what: str,
        request: Callable[[str | None], Awaitable[Any]],
        next_token: Callable[[M], str | None],
    ) -> AsyncIterator[tuple[M, bool]]:
        """Each page of a token-paged library listing as `model`, with whether it is the last (`paging.paged`)."""

        async def page(token: str | None) -> M:
            return page_of(model, await self.call(f"GET {what}", request(token)), f"{self.name}: {what}")

        return paged(f"{self.name}: {what}", page, next_token)

    async def call(self, what: str, request: Awaitable[Any]) -> Any:
        """Await one library call; non-2xx answers were already raised by the middleware."""
        if self.client is not None:
            self.client.session = self.session()
        try:
            return await request
        except aiohttp.ContentTypeError as exc:
            raise PermanentError(f"{self.name}: {what} answered a body that is not JSON: {exc.message}") from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise TransientError(f"{self.name}: {what} failed: {type(exc).__name__}: {exc}") from exc
        except ValueError as exc:
            raise PermanentError(f"{self.name}: {what} returned malformed JSON: {exc}") from exc

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        """Check the endpoint's budget, redirect, send; raise the connector error for a non-2xx answer."""
        what = f"{self.name}: {request.method} {request.url.path}"
        budget = self.budgets.setdefault(
            f"{request.method} {_ID_SEGMENT.sub('/:id', request.url.path)}", HeaderBudget()
        )
        budget.check(time.time())
        self._redirect(request)
        response = await handler(request)
        # The budget learns from answers that got through; a 429 carries its reset to the core with the error.
        if response.status != 429:
            budget.update(response.headers, time.time())
        if 200 <= response.status < 300:
            return response
        error = error_for(response.status, response.headers, await response.text(errors="replace"), what)
        if self.refused_writes and isinstance(error, AuthError) and response.status == 403 and request.method != "GET":
            error = PermanentError(str(error))
        raise error or PermanentError(f"{what} answered HTTP {response.status}")

    def _redirect(self, request: ClientRequest) -> None:
        url = request.url
        if self.base == self.vendor or (url.scheme, url.host) != (self.vendor.scheme, self.vendor.host):
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

    async def close(self) -> None:
        """Close the session."""
        await close_session(self._session)
