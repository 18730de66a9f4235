"""CSAT questions: which conversations get one, and sending each exactly once on the conversation's own channel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.connector import Connector, ConnectorError, Kind, ReplyTarget, SentReply
from inbox.csat import may_ask
from inbox.logs import log_context
from inbox.pipeline.actions import may_have_arrived
from inbox.settings import CsatSettings
from inbox.store import csat
from inbox.store.models import Status, utcnow
from inbox.templates import ReplyTemplates

log = logging.getLogger("inbox.csat")

TEMPLATE = "csat"  # `csat.<language>.j2` in the CSAT templates folder


class CsatAsker:
    """Schedules a question when a conversation is resolved with a reply, and sends the due ones from the sweep.

    A question is claimed before it is sent (one worker sends it), its text fixed at the first claim, and marked
    sent after. A claim that ran out (a crash, no answer from the platform) is taken again and the platform is asked
    whether the question arrived (`find_reply`) before it is sent again.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        settings: CsatSettings,
        connectors: Mapping[str, Connector[Any, Any]],
        clock: Callable[[], datetime] = utcnow,
        *,
        brand: str = "",
        worker: str = "local",
        claim_seconds: float = 60.0,
        on_event: Callable[[], None] = lambda: None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.connectors = connectors
        self.clock = clock
        self.brand = brand
        self.worker = worker
        self.claim = timedelta(seconds=claim_seconds)
        self.on_event = on_event
        self.templates = ReplyTemplates(settings.templates, shipped="csat")
        self.shipped = ReplyTemplates(shipped="csat")
        self.types = settings.asked_types()

    def ask_at(self, thread: Any) -> datetime | None:
        """When the resolved `thread` gets its question; None when it gets none (off, channel, kind, connector)."""
        connector = self.connectors.get(thread.connector)
        if not self.settings.enabled or connector is None or connector.type not in self.types:
            return None
        if not may_ask(connector.type, thread.kind):
            return None
        return self.clock() + timedelta(minutes=self.settings.ask_after_minutes)

    async def run(self) -> int:
        """Send the questions due now (and finish those a crash left); close unanswered ones; how many were sent."""
        now = self.clock()
        await csat.close_expired(self.engine, now - timedelta(hours=self.settings.answer_hours))
        sent = 0
        for row in await csat.claim_due(self.engine, now, self._claim(now)):
            with log_context(connector=row.connector, thread_id=row.thread_id):
                sent += await self._ask(row)
        if sent:
            self.on_event()
        return sent

    async def _ask(self, row: Any) -> bool:
        connector = self.connectors.get(row.connector)
        if row.thread_status != Status.RESOLVED:
            # The customer wrote again before the question was due: asking now would interrupt the conversation.
            await csat.cancel(self.engine, row.id)
            return False
        if connector is None:
            await csat.mark_failed(self.engine, row.id, f"connector {row.connector!r} is not configured")
            return False
        target = ReplyTarget(
            external_id=row.item_external_id,
            thread_id=row.thread_key,
            kind=Kind(row.item_kind),
            author_handle=row.item_author_handle,
            reply_to=dict(row.item_reply_to or {}),
        )
        text = row.text or self._render(row, connector.reply_limit(target.kind))
        claim = self._claim(self.clock())
        text = await csat.set_text(self.engine, row.id, text, claim)
        if text is None:
            return False  # taken over by another worker
        try:
            async with asyncio.timeout(self.claim.total_seconds() / 2):
                found = await connector.find_reply(target, text) if row.attempts > 1 else None
                if found is None:
                    if not await csat.renew_claim(self.engine, row.id, self._claim(self.clock())):
                        return False
                    found = await connector.reply(target, text)
        except (TimeoutError, ConnectorError) as exc:
            if may_have_arrived(exc):
                log.warning(
                    "no answer to CSAT question %d (%s); looked for on the platform before any resend", row.id, exc
                )
                await csat.release(self.engine, row.id)
            else:
                log.warning("CSAT question %d refused by %s: %s", row.id, connector.channel, exc)
                await csat.mark_failed(self.engine, row.id, str(exc) or type(exc).__name__)
            return False
        await self._sent(row.id, found)
        return True

    async def _sent(self, question_id: int, sent: SentReply) -> None:
        await csat.mark_sent(self.engine, question_id, sent.external_id, self.clock())
        log.info("CSAT question %d sent", question_id)

    def _render(self, row: Any, limit: int | None) -> str:
        variables = {"customer_name": row.item_author_name or row.item_author_handle, "brand": self.brand}
        question = self.templates.render_named(TEMPLATE, row.language, variables, limit)
        if question is None:
            question = self.shipped.render_named(TEMPLATE, row.language, variables, limit)
        assert question is not None, "the shipped csat.en.j2 is missing"
        return question.text

    def _claim(self, now: datetime) -> csat.Claim:
        return csat.Claim(self.worker, now + self.claim)
