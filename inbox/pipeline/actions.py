"""What agents do to a thread: assign, resolve, reply (exactly once, surviving a crash mid-send)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox import windows
from inbox.connector import (
    STANDARD_MODE,
    Connector,
    ConnectorError,
    Delivery,
    Kind,
    ReplyTarget,
    SentReply,
    TransientError,
)
from inbox.logs import log_context, log_fields
from inbox.metrics import Metrics
from inbox.store import items, replies
from inbox.store.db import describe_outage, is_outage
from inbox.store.models import Status, utcnow
from inbox.views import ThreadView

log = logging.getLogger("inbox.actions")  # the logger name users filter on, unchanged by the move into inbox.pipeline


class ActionError(Exception):
    """An action that cannot be done; the message is for the agent."""


@dataclass(frozen=True, slots=True)
class ReplyOutcome:
    """How a reply ended: `sent`; `duplicate` when one was already sent or on its way; `unknown` when the
    platform did not answer, so whether it arrived is checked on the platform before it is sent again.

    The store failing half-way leaves no half-done reply: `deferred` when it was recorded but the store failed
    before sending (reply recovery sends it once the store is back), `unrecorded` when it was sent but the
    store failed before recording that (reply recovery finds it on the platform and records it)."""

    status: str
    reply_id: int
    external_id: str | None = None
    url: str | None = None


class Actions:
    """Agent actions on threads; each change records an event so Slack and logs show the truth."""

    def __init__(
        self,
        engine: AsyncEngine,
        connectors: Mapping[str, Connector[Any, Any]],
        clock: Callable[[], datetime] = utcnow,
        *,
        worker: str = "local",
        claim_seconds: float = 60.0,
        metrics: Metrics | None = None,
        on_event: Callable[[], None] = lambda: None,
        ask_at: Callable[[Any], datetime | None] | None = None,
    ) -> None:
        self.engine = engine
        # For a thread being resolved: when its CSAT question is due (None: not asked); None: CSAT is off.
        self.ask_at = ask_at
        self.on_event = on_event  # told after each change is committed with its event, so Slack shows it now
        self.connectors = connectors
        self.clock = clock
        self.worker = worker
        # A reply being sent is this worker's for this long; a send gets half of it, so it ends before the claim.
        self.claim = timedelta(seconds=claim_seconds)
        self.metrics = metrics

    @log_fields(thread_id="thread_id")
    async def assign(self, thread_id: int, agent: str) -> None:
        """Give the thread to `agent`."""
        before = await items.assign(self.engine, thread_id, agent, self.clock())
        if before is None:
            raise ActionError(_no_such_thread(thread_id))
        if before == Status.RESOLVED:
            raise ActionError("this conversation is already resolved")
        self.on_event()

    @log_fields(thread_id="thread_id")
    async def resolve(self, thread_id: int, agent: str) -> None:
        """Close the thread without (another) reply; its clock stops."""
        before = await items.resolve(self.engine, thread_id, agent, self.clock(), self.ask_at)
        if before is None:
            raise ActionError(_no_such_thread(thread_id))
        if before != Status.RESOLVED:
            self.on_event()

    @log_fields(thread_id="thread_id")
    async def reply(self, thread_id: int, text: str, agent: str, mode: str = STANDARD_MODE) -> ReplyOutcome:
        """Send `text` to the customer once per clock cycle and reply mode, however often this is called.

        Refused, before anything is recorded or sent, when the platform would refuse it: its reply window has
        closed (and the connector has nothing it may send instead), or the item offers no such mode, or no longer.
        """
        text = text.strip()
        if not text:
            raise ActionError("the reply is empty")
        now = self.clock()
        async with self.engine.begin() as conn:
            thread = await items.lock_thread(conn, thread_id)
            if thread is None:
                raise ActionError(_no_such_thread(thread_id))
            if thread.erased_at is not None:
                raise ActionError("this conversation was erased (inbox forget or retention): nothing can be sent to it")
            connector = self._connector(thread.connector)
            item = await items.latest_item(conn, thread_id)
            problem = refusal(connector, thread.channel, item.kind, item.language, windows.of_row(item), mode, now)
            if problem:
                raise ActionError(problem)
            limit = connector.reply_limit(Kind(item.kind))
            if limit is not None and len(text) > limit:
                raise ActionError(f"the reply is {len(text)} characters; {thread.channel} allows {limit}")
            claim = self._claim_until(now)
            claimed = await replies.record(conn, thread, item.id, text, agent, now, claim, mode=mode)
        if isinstance(claimed, replies.Existing):
            return ReplyOutcome("duplicate", *claimed)
        return await self._send(claimed, thread.connector, _target(item, thread.external_id, mode), text)

    def refusal(self, view: ThreadView, mode: str = STANDARD_MODE) -> str | None:
        """Why a reply in `mode` to the conversation as drawn would be refused now (to say so before the editor opens)."""
        connector = self.connectors.get(view.connector)
        if connector is None:
            return None  # reply() says so, with the reason
        return refusal(connector, view.channel, view.kind, view.language, view.window, mode, self.clock())

    async def record_deliveries(self, connector: str, deliveries: list[Delivery]) -> int:
        """Store what the platform reports of our replies; a failed one is announced (Slack shows it). Returns how
        many replies were newly reported failed."""
        reports = [(d.reply_external_id, d.state.value, d.at, d.error) for d in deliveries]
        failed = await replies.record_deliveries(self.engine, connector, reports, self.clock())
        for undelivered in failed:
            log.warning("%s reports reply %d undelivered: %s", connector, undelivered.reply_id, undelivered.error)
        if failed:
            self.on_event()
        return len(failed)

    async def recover(self, limit: int = 50) -> int:
        """Finish replies left pending by a crash or an unanswered send: look on the platform, send only if absent.

        Each one is claimed first (`FOR UPDATE SKIP LOCKED`), one at a time so that its claim outlasts the work on
        it, and of several workers recovering at once only the claimant touches it.
        """
        done = 0
        for _ in range(limit):
            row = await self._claim_leftover()
            if row is None:
                break
            if row.connector in self.connectors:
                with log_context(
                    connector=row.connector, thread_id=row.thread_id, item_id=row.id, reply_id=row.reply_id
                ):
                    done += await self._recover(row)
        return done

    async def _recover(self, row: Any) -> bool:
        target = _target(row, row.thread_key, row.reply_mode)
        try:
            async with asyncio.timeout(self.claim.total_seconds() / 4):
                found = await self.connectors[row.connector].find_reply(target, row.reply_text)
        except (TimeoutError, ConnectorError) as exc:
            log.warning("cannot check whether reply %d went out: %s", row.reply_id, _reason(exc))
            return False
        if found is not None:
            await self._mark_sent(row.reply_id, found)
            log.info("reply %d had been sent before a restart; marked sent", row.reply_id)
            return True
        try:
            outcome = await self._send(row.reply_id, row.connector, target, row.reply_text)
        except ActionError:
            return False
        return outcome.status == "sent"

    async def _claim_leftover(self) -> Any:
        now = self.clock()
        return await replies.claim_leftover(self.engine, now, self._claim_until(now))

    def _claim_until(self, now: datetime) -> replies.Claim:
        return replies.Claim(self.worker, now + self.claim)

    def _connector(self, name: str) -> Connector[Any, Any]:
        connector = self.connectors.get(name)
        if connector is None:
            raise ActionError(f"connector {name!r} is not configured here, so the reply cannot be sent")
        return connector

    @log_fields(connector="connector_name", reply_id="reply_id")
    async def _send(self, reply_id: int, connector_name: str, target: ReplyTarget, text: str) -> ReplyOutcome:
        connector = self._connector(connector_name)
        try:
            ours = await self._still_ours(reply_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "reply %d is recorded but the store failed before it was sent; reply recovery sends it "
                "once the store is back: %s",
                reply_id,
                describe_outage(exc),
            )
            return ReplyOutcome("deferred", reply_id)
        if not ours:
            # This worker stalled past its claim and another one took the reply over: only the claimant sends.
            log.warning("reply %d was taken over by another worker; not sent from here", reply_id)
            return ReplyOutcome("duplicate", reply_id)
        try:
            async with asyncio.timeout(self.claim.total_seconds() / 2):
                sent = await connector.reply(target, text)
        except (TimeoutError, ConnectorError) as exc:
            if may_have_arrived(exc):
                # No answer is not a refusal: the reply may be on the platform. Recovery looks there before resending.
                log.warning(
                    "no answer to reply %d (%s); it is checked on the platform before any resend",
                    reply_id,
                    _reason(exc),
                )
                # Not released if the store fails here: the claim then runs out, and recovery looks all the same.
                await _unless_outage(self._release(reply_id), f"reply {reply_id}: could not release the claim")
                return ReplyOutcome("unknown", reply_id)
            await _unless_outage(
                self._mark_failed(reply_id, str(exc)), f"reply {reply_id}: could not record the refusal"
            )
            hint = " (try again shortly)" if isinstance(exc, TransientError) else ""
            raise ActionError(f"{connector.channel} refused the reply: {exc}{hint}") from exc
        try:
            await self._mark_sent(reply_id, sent)
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning(
                "reply %d was sent but the store failed before it was recorded; reply recovery finds it on "
                "the platform and records it once the store is back: %s",
                reply_id,
                describe_outage(exc),
            )
            return ReplyOutcome("unrecorded", reply_id, sent.external_id, sent.url)
        return ReplyOutcome("sent", reply_id, sent.external_id, sent.url)

    async def _still_ours(self, reply_id: int) -> bool:
        """Renew this worker's claim on a pending reply right before sending it; False if it is no longer ours."""
        return await replies.renew_claim(self.engine, reply_id, self._claim_until(self.clock()))

    async def _release(self, reply_id: int) -> None:
        await replies.release(self.engine, reply_id)

    async def _mark_sent(self, reply_id: int, sent: SentReply) -> None:
        now = self.clock()
        clock = await replies.mark_sent(self.engine, reply_id, sent.external_id, sent.url, now)
        self.on_event()
        if self.metrics is not None and clock is not None:
            self.metrics.observe_response(clock.channel, clock.clock_kind, clock.clock_start, now)

    async def _mark_failed(self, reply_id: int, error: str) -> None:
        await replies.mark_failed(self.engine, reply_id, error)


def _no_such_thread(thread_id: int) -> str:
    return f"no conversation with id {thread_id}"


async def _unless_outage(call: Any, what: str) -> None:
    """Await a store write whose loss the claim's expiry repairs: an outage is logged, not raised."""
    try:
        await call
    except Exception as exc:
        if not is_outage(exc):
            raise
        log.warning("%s (store unavailable): %s", what, describe_outage(exc))


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def may_have_arrived(exc: BaseException) -> bool:
    """A timeout, a dropped connection or a 5xx leaves a reply's fate unknown; a 4xx (429 too) says it did not land."""
    if isinstance(exc, TimeoutError):
        return True
    return isinstance(exc, TransientError) and (exc.status is None or exc.status >= 500)


def refusal(
    connector: Connector[Any, Any],
    channel: str,
    kind: str,
    language: str,
    window: windows.ItemWindow,
    mode: str,
    now: datetime,
) -> str | None:
    """Why the platform would refuse a reply in `mode` to an item with this window now, for the agent; None if it would not."""
    if window.removed_at is not None:
        return window.removal(channel)
    if mode == STANDARD_MODE:
        # What the connector can still send after the window is asked now: its templates may have changed since ingest.
        live = windows.after_window_text(connector.after_window(Kind(kind), language))
        return windows.ItemWindow(window.closes_at, window.extended_until, live).refusal(channel, now)
    offered = window.mode(mode)
    if offered is None:
        return f"this {kind} offers no {mode!r} reply"
    if offered.closes_at is not None and now >= offered.closes_at:
        return (
            f"“{offered.label}” was possible until {offered.closes_at:%d %b %H:%M} UTC; the platform no longer takes it"
        )
    return None


def _target(item: Any, thread_key: str, mode: str = STANDARD_MODE) -> ReplyTarget:
    window = windows.of_row(item)
    offered = window.mode(mode) if mode != STANDARD_MODE else None
    return ReplyTarget(
        external_id=item.external_id,
        thread_id=thread_key,
        kind=Kind(item.kind),
        author_handle=item.author_handle,
        reply_to=dict(item.reply_to or {}),
        mode=mode,
        language=item.language,
        window_closes_at=offered.closes_at if offered else window.closes_at,
        extended_window_closes_at=None if offered else window.extended_until,
    )
