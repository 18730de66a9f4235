"""The base of the Graph API fakes (facebook, instagram, whatsapp): routes under `/{api_version}/`, the token
checked on every call, Graph's error JSON for faults, cursor paging, and Meta-signed webhook deliveries."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from inbox.fakes.data import payload
from inbox.fakes.vendor import Fault, VendorFake

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta's own sample apps and our docs use this version; the fakes answer on whichever one they are given.
API_VERSION = "v21.0"


@dataclass(slots=True)
class GraphCall:
    """One call as the fake received it: method, path (version included), query, JSON or form body, the token."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    token: str | None


@dataclass(slots=True)
class Delivered:
    """What the inbox answered a signed delivery."""

    status: int
    text: str
    headers: dict[str, str] = field(default_factory=dict)


def graph_error_body(code: int, message: str, *, subcode: int | None = None, kind: str = "OAuthException") -> str:
    """Graph's error JSON (developers.facebook.com/docs/graph-api/guides/error-handling)."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEfGhIjK"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return json.dumps({"error": error})


def meta_signature(app_secret: str, body: bytes) -> str:
    """`X-Hub-Signature-256` as Meta computes it over the raw bytes it sends."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class GraphFake(VendorFake):
    """A local Graph API: subclasses add their routes with `route`; every call is recorded and its token checked."""

    def __init__(self, *, token: str = "fake-graph-token", app_secret: str = "fake-app-secret-0123456789") -> None:
        super().__init__()
        self.api_version = API_VERSION
        self.token = token
        self.app_secret = app_secret
        self.calls: list[GraphCall] = []
        # Answers given instead of the next POST (a send refused): Graph errors, 5xx.
        self.send_faults: deque[Fault] = deque()

    # --- routes -----------------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        """The subclass's Graph routes (added with `route`)."""
        self.graph_routes(app)

    def graph_routes(self, app: web.Application) -> None:
        """Override: add the product's routes with `self.route(app, "GET", "/{id}/...", handler)`."""

    def route(self, app: web.Application, method: str, path: str, handler: Handler) -> None:
        """A Graph route under any `/vNN.N/` prefix (the connector's `api_version`)."""
        app.router.add_route(method, "/{version:v\\d+\\.\\d+}" + path, handler)

    def version_path(self, path: str) -> str:
        """A path as the connector calls it: under the fake's API version."""
        return f"/{self.api_version}/{path.lstrip('/')}"

    # --- what was called ----------------------------------------------------------------------------------------

    def calls_to(self, method: str, path: str) -> list[GraphCall]:
        """The calls of `method` to `path` (without the version prefix)."""
        return [c for c in self.calls if c.method == method and c.path.split("/", 2)[-1] == path.lstrip("/")]

    # --- faults -------------------------------------------------------------------------------------------------

    def graph_fault(
        self,
        code: int,
        message: str,
        *,
        status: int = 400,
        subcode: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """A Graph error answer."""
        return Fault(status, headers or {}, graph_error_body(code, message, subcode=subcode))

    def fault_rate_limited(self, reset_in: float) -> Fault:
        """Graph's throttling: code 4 with the Business Use Case header announcing when access comes back."""
        usage = {
            "0": [
                {
                    "type": "messenger",
                    "call_count": 100,
                    "total_cputime": 20,
                    "total_time": 20,
                    "estimated_time_to_regain_access": round(reset_in / 60),
                }
            ]
        }
        body = json.dumps(payload("meta", "graph_error_rate_limited.json"))
        return Fault(400, {"X-Business-Use-Case-Usage": json.dumps(usage)}, body)

    def fault_unauthorized(self) -> Fault:
        """An expired token: Graph answers 400 with OAuthException 190/463."""
        return Fault(400, {}, json.dumps(payload("meta", "graph_error_token_expired.json")))

    def fault_permission(self, permission: str | None = None) -> Fault:
        """A missing permission: code 10 (Meta's message names the permission only sometimes)."""
        if permission is None:
            return Fault(403, {}, json.dumps(payload("meta", "graph_error_permission_10.json")))
        return self.graph_fault(200, f"(#200) Requires {permission} permission", status=403)

    # --- the middleware: record, check the token, faults --------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        raw = await request.read()  # kept by aiohttp: the handler reads it again
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = dict(await request.post())
        bearer = request.headers.get("Authorization", "")
        token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else request.query.get("access_token")
        if token is None and isinstance(body, dict):
            token = body.get("access_token")
        self.calls.append(GraphCall(request.method, request.path, dict(request.query), body, token))
        if not request.path.startswith("/v"):
            return await super()._middleware(request, handler)  # the fake's own helpers (media downloads)
        if token != self.token:
            self.requests.append(request)
            return web.Response(
                status=400,
                text=json.dumps(payload("meta", "graph_error_messenger_example.json")),
                content_type="application/json",
            )
        # `faults` answer the next GET (a poll or a check), `send_faults` the next POST (a send).
        queue = self.faults if request.method == "GET" else self.send_faults
        if queue:
            self.requests.append(request)
            fault = queue.popleft()
            return web.Response(
                status=fault.status, headers=fault.headers, text=fault.body, content_type="application/json"
            )
        return await super()._middleware(request, handler)

    # --- paging -------------------------------------------------------------------------------------------------

    def list_page(self, request: web.Request, entries: Sequence[Any], limit: int | None = None) -> web.Response:
        """A Graph list page of `entries` from the request's `after` cursor, with `paging.cursors` and `next`."""
        size = int(request.query.get("limit", limit or self.page_size))
        start = int(request.query.get("after", "0") or 0)
        chunk = list(entries[start : start + size])
        body: dict[str, Any] = {"data": chunk}
        if chunk:
            body["paging"] = {"cursors": {"before": str(start), "after": str(start + len(chunk))}}
            if start + size < len(entries):
                query = {**request.query, "after": str(start + len(chunk))}
                body["paging"]["next"] = str(request.url.with_query(query))
        return web.json_response(body)

    # --- webhooks -----------------------------------------------------------------------------------------------

    def signed(self, delivery: Any, *, secret: str | None = None) -> tuple[bytes, dict[str, str]]:
        """A delivery's raw bytes and headers as Meta sends them (signed with the app secret)."""
        body = json.dumps(delivery).encode() if not isinstance(delivery, bytes) else delivery
        signature = meta_signature(self.app_secret if secret is None else secret, body)
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: signature}

    async def deliver(
        self,
        url: str,
        delivery: Any,
        *,
        secret: str | None = None,
        signature: str | bool | None = True,
        session: aiohttp.ClientSession | None = None,
    ) -> Delivered:
        """POST a webhook delivery to the inbox's `/webhooks/NAME` URL, signed (or with `signature` as given, or
        none when `signature` is None)."""
        body, headers = self.signed(delivery, secret=secret)
        if signature is None:
            del headers[SIGNATURE_HEADER]
        elif isinstance(signature, str):
            headers[SIGNATURE_HEADER] = signature
        own = session is None
        client = session or aiohttp.ClientSession()
        try:
            async with client.post(url, data=body, headers=headers) as response:
                return Delivered(response.status, await response.text(), dict(response.headers))
        finally:
            if own:
                await client.close()

    async def verify_subscription(self, url: str, verify_token: str, challenge: str = "1158201444") -> Delivered:
        """Meta's GET subscription check of a callback URL."""
        query = {"hub.mode": "subscribe", "hub.challenge": challenge, "hub.verify_token": verify_token}
        async with aiohttp.ClientSession() as client, client.get(url, params=query) as response:
            return Delivered(response.status, await response.text(), dict(response.headers))
