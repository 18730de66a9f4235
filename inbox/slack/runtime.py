"""The Slack side of the inbox: the Web API client, the notifier and the Bolt app (HTTP or Socket Mode)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from inbox.settings import SlackSettings
from inbox.slack import gate
from inbox.slack.access import Access
from inbox.slack.api import SLACK_ERRORS, Identity, describe, make_client, whoami
from inbox.slack.core import Core
from inbox.slack.digest import Digest
from inbox.slack.interactions import Interactions
from inbox.slack.notifier import SlackNotifier
from inbox.slack.tasks import Background, bolt_listener

log = logging.getLogger(__name__)

_SEEN_TTL = 600.0  # Slack retries within minutes; a retried request inside this window is dropped
_SEEN_MAX = 50_000


class Slack:
    """Everything Slack: posts through the outbox, interactions through Bolt, tracked background work."""

    def __init__(self, settings: SlackSettings, core: Core) -> None:
        self.settings = settings
        self.core = core
        self.client = make_client(settings, metrics=core.metrics)
        self.tasks = Background()
        self.notifier = SlackNotifier(settings, self.client, core.engine, core.clock, in_flight=core.claim_seconds)
        self.access = Access(settings, self.client, self.identity)
        self._identity: Identity | None = None
        self._identity_lock = asyncio.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._session: aiohttp.ClientSession | None = None
        self._socket: AsyncSocketModeHandler | None = None
        secret = settings.signing_secret.get_secret_value() if settings.signing_secret else None
        self.app = AsyncApp(
            name="cx-inbox",
            logger=logging.getLogger("inbox.slack.bolt"),
            # Bolt's own client carries no token: `authorize` hands each request the bot token.
            client=make_client(settings, with_token=False),
            signing_secret=secret,
            authorize=bolt_listener(self._authorize),
            # Listeners ack and return at once; their work runs in `self.tasks`, which shutdown awaits.
            process_before_response=True,
            request_verification_enabled=secret is not None,
        )
        self.app.middleware(bolt_listener(self._drop_retries))
        self.interactions = Interactions(self, self.app)
        # The weekly summary to the leads, when `[reports] digest` sets its slot.
        self.digest: Digest | None = None
        if core.settings.reports.digest and settings.leads_channel:
            self.digest = Digest(core, self.client, settings.leads_channel, core.actions.worker)

    @property
    def socket_mode(self) -> bool:
        """True when an app-level token is set: events arrive over a WebSocket instead of HTTP."""
        return bool(self.settings.app_token and self.settings.app_token.get_secret_value())

    async def start(self) -> None:
        """Open the shared HTTP session, learn who the bot is, and connect Socket Mode if configured."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
            self.client.session = self._session
        try:
            me = await self.identity()
            log.info("Slack: connected as <@%s> in %s", me.bot_user_id, me.team or me.team_id)
        except SLACK_ERRORS as exc:
            # Not fatal: posts wait in the outbox and are retried until Slack answers.
            log.error("Slack: auth.test failed (%s); posts will be retried", describe(exc))
        if self.socket_mode and self._socket is None:
            assert self.settings.app_token is not None
            self._socket = AsyncSocketModeHandler(self.app, self.settings.app_token.get_secret_value())
            await self._socket.connect_async()
            log.info("Slack: Socket Mode connected")

    async def close(self, timeout: float = 30) -> None:
        """Stop taking interactions, finish the work already acknowledged, close connections."""
        if self._socket is not None:
            await self._socket.close_async()
            self._socket = None
        try:
            await self.tasks.drain(timeout)
        except TimeoutError:
            log.error("Slack: %d interaction(s) still running after %.0f s at shutdown", len(self.tasks), timeout)
        if self._session is not None:
            await self._session.close()
            self._session = None
            self.client.session = None

    async def identity(self) -> Identity:
        """The bot's identity (auth.test), asked once and kept."""
        if self._identity is None:
            async with self._identity_lock:
                if self._identity is None:
                    self._identity = await whoami(self.client)
        return self._identity

    async def handle_http(self, request: web.Request) -> web.Response:
        """POST /slack/events: 401 unless signed, 400 unless a payload Slack could send; Bolt acks, work follows."""
        body = await request.read()
        secret = self.settings.signing_secret.get_secret_value() if self.settings.signing_secret else None
        if secret is not None and not gate.signature_ok(secret, request.headers, body, time.time()):
            log.warning("Slack: refused a request with a missing, malformed, stale or wrong signature")
            return web.json_response({"error": "invalid request"}, status=401)
        problem = gate.payload_problem(body, request.content_type)
        if problem is not None:
            log.warning("Slack: refused a signed request that is not a valid payload: %s", problem[:300])
            return web.json_response({"error": f"not a valid Slack payload: {problem[:300]}"}, status=400)
        with self.tasks.answering():
            # Bolt checks the signature again (its own safety middleware stays on) and routes the request.
            bolt_request = AsyncBoltRequest(
                body=body.decode("utf-8"), query=request.query_string, headers=dict(request.headers)
            )
            response = await self.app.async_dispatch(bolt_request)
            return await to_aiohttp_response(response)

    async def _authorize(self, team_id: str | None = None) -> AuthorizeResult:
        me = await self.identity()
        token = self.settings.bot_token.get_secret_value() if self.settings.bot_token else None
        return AuthorizeResult(
            enterprise_id=None,
            team_id=me.team_id,
            team=me.team,
            url=me.url,
            bot_user_id=me.bot_user_id,
            bot_id=me.bot_id,
            bot_token=token,
        )

    async def _drop_retries(
        self, req: AsyncBoltRequest, resp: BoltResponse, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse:
        """Acknowledge a request Slack sends again (X-Slack-Retry-Num) without doing its work twice."""
        key = _request_key(req.body)
        now = time.monotonic()
        while self._seen and _expired(self._seen, now):
            self._seen.popitem(last=False)
        if key is not None:
            if key in self._seen:
                retry = (req.headers.get("x-slack-retry-num") or ["?"])[0]
                log.info("Slack: request %s seen before (retry %s); acknowledged, not done again", key, retry)
                return BoltResponse(status=200, body="")
            self._seen[key] = now
            if len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
        await next()
        return resp


def _expired(seen: OrderedDict[str, float], now: float) -> bool:
    oldest = next(iter(seen.values()))
    return now - oldest > _SEEN_TTL


def _request_key(body: dict[str, Any]) -> str | None:
    """What identifies one request across Slack's retries: the event id, or the interaction's trigger id."""
    if body.get("event_id"):
        return f"event:{body['event_id']}"
    if body.get("trigger_id"):
        return f"trigger:{body['trigger_id']}"
    return None
