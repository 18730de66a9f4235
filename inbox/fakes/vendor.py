"""The base of every vendor fake: a local aiohttp server speaking one vendor's format, with fault knobs."""

from __future__ import annotations

import abc
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

from aiohttp import web
from aiohttp.test_utils import TestServer


@dataclass(slots=True)
class Fault:
    """An answer the fake gives instead of the next fetch page."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass(slots=True)
class SentReply:
    """A reply as the vendor received it."""

    target: str
    text: str
    details: dict[str, Any] = field(default_factory=dict)


class VendorFake(abc.ABC):
    """A local aiohttp server speaking one vendor's documented wire format, with knobs for the contract."""

    page_size: ClassVar[int] = 20
    # Paths (prefixes) of the list endpoints a poll reads, and of the cheap call `check` makes; faults apply to both.
    fetch_paths: ClassVar[tuple[str, ...]] = ()
    check_paths: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        self.faults: deque[Fault] = deque()
        self.malformed: int = 0
        self.wrong_shape: int = 0
        self.replies: list[SentReply] = []
        self.requests: list[web.Request] = []
        self.now = datetime.now(UTC)
        self.server: TestServer | None = None

    @abc.abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add the vendor's routes."""

    @abc.abstractmethod
    def add_customer_post(
        self, text: str, *, author: str = "customer1", minutes_ago: float = 1.0, reply_to: str | None = None
    ) -> str:
        """A customer's post/mention/review/DM; returns the external id the connector will give the item."""

    @abc.abstractmethod
    def add_brand_post(self, text: str) -> list[str]:
        """The brand's own post and a repost (where the platform has them); the ids a connector must ignore."""

    @abc.abstractmethod
    def add_existing_reply(self, target: str, text: str) -> None:
        """A reply already on the platform, as if sent before a crash."""

    @abc.abstractmethod
    def add_broken_item(self) -> None:
        """An item in the next page whose shape is wrong (a required field missing or of the wrong type)."""

    def duplicate_across_pages(self) -> None:
        """Serve the last item of each page again as the first item of the next one."""
        self.duplicating = True

    duplicating: bool = False

    @property
    def base_url(self) -> str:
        """Where the connector's `api_url` should point."""
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    def fetch_requests(self) -> list[web.Request]:
        """Requests that hit a list endpoint."""
        return [r for r in self.requests if r.path.startswith(self.fetch_paths)]

    async def start(self) -> VendorFake:
        """Start the server on a free local port."""
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        self.server = TestServer(app)
        await self.server.start_server()
        return self

    async def close(self) -> None:
        """Stop the server."""
        if self.server is not None:
            await self.server.close()

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        self.requests.append(request)
        if request.method == "GET" and request.path.startswith(self.fetch_paths + self.check_paths) and self.faults:
            fault = self.faults.popleft()
            return web.Response(
                status=fault.status, headers=fault.headers, text=fault.body, content_type="application/json"
            )
        if request.method == "GET" and request.path.startswith(self.fetch_paths):
            if self.malformed:
                self.malformed -= 1
                return web.Response(status=200, text='{"data": [{"id": "1", "text": ', content_type="application/json")
            if self.wrong_shape:
                self.wrong_shape -= 1
                return web.Response(status=200, text='"unexpected"', content_type="application/json")
        return await handler(request)

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """The vendor's own 429 answer with its reset headers (override per vendor)."""
        return Fault(429, {"Retry-After": str(int(reset_in))}, '{"error": "rate limited"}')

    def fault_unauthorized(self) -> Fault:
        """The vendor's own 401 answer (override per vendor)."""
        return Fault(401, {}, '{"error": "unauthorized"}')
