"""The outbox: events written with their cause are handed to notifiers in order, retried until done."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.logs import log_context
from inbox.models import Event, EventKind, utcnow
from inbox.sla import SlaPolicies
from inbox.views import ThreadView, thread_view

log = logging.getLogger(__name__)

_MAX_BACKOFF = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Notice:
    """An event with the conversation it is about, ready to announce."""

    event_id: int
    kind: EventKind
    payload: dict[str, Any]
    created_at: datetime
    thread: ThreadView | None


class Notifier(Protocol):
    """Announces notices somewhere (the log, Slack); raises to have the notice retried later."""

    async def notify(self, notice: Notice) -> None:
        """Announce one notice."""


class LogNotifier:
    """Writes new items and escalations to the log: what `inbox run` does without Slack."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger("inbox.escalations")

    async def notify(self, notice: Notice) -> None:
        """Log one line per notice."""
        t = notice.thread
        if t is None:
            self.log.warning("%s: %s", notice.kind, notice.payload)
            return
        who = f"{t.channel} @{t.author_handle}"
        if notice.kind == EventKind.SLA_BREACH:
            self.log.warning(
                "SLA BREACH: thread %d (%s) has waited %.0f min for a reply, due %s; assignee: %s",
                t.thread_id, who, t.clock.minutes_waited, t.clock.due_at.strftime("%H:%M UTC"), t.assignee or "nobody",
            )
        elif notice.kind == EventKind.SLA_WARNING:
            self.log.warning(
                "SLA warning: thread %d (%s) has waited %.0f min; %.0f min left; assignee: %s",
                t.thread_id, who, t.clock.minutes_waited, t.clock.minutes_left, t.assignee or "nobody",
            )
        elif notice.kind in (EventKind.NEW_THREAD, EventKind.FOLLOW_UP):
            self.log.info(
                "%s: thread %d (%s, %s/%s/%s priority): %s",
                "new" if notice.kind == EventKind.NEW_THREAD else "follow-up",
                t.thread_id, who, t.language, t.intent, t.priority, _short(t.text),
            )
        else:
            self.log.info("%s: thread %d (%s) %s", notice.kind, t.thread_id, who, notice.payload)


class Outbox:
    """Delivers pending events to every notifier, oldest first, one conversation's events in order."""

    def __init__(
        self,
        engine: AsyncEngine,
        notifiers: Sequence[Notifier],
        policies: SlaPolicies,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.notifiers = list(notifiers)
        self.policies = policies
        self.clock = clock

    async def dispatch(self, limit: int = 200) -> int:
        """Deliver what is due now; return how many events were done."""
        now = self.clock()
        async with self.engine.connect() as conn:
            events = (
                await conn.execute(
                    sa.select(Event)
                    .where(Event.done_at.is_(None))
                    .where(sa.or_(Event.next_attempt_at.is_(None), Event.next_attempt_at <= now))
                    .order_by(Event.id)
                    .limit(limit)
                )
            ).all()
        blocked: set[int] = set()
        done = 0
        for event in events:
            # A conversation whose earlier event failed waits, so Slack never sees an update before its post.
            if event.thread_id is not None and event.thread_id in blocked:
                continue
            thread = await thread_view(self.engine, self.policies, event.thread_id, now) if event.thread_id else None
            notice = Notice(event.id, EventKind(event.kind), event.payload or {}, event.created_at, thread)
            connector = thread.connector if thread else notice.payload.get("connector")
            with log_context(connector=connector, event_id=event.id, thread_id=event.thread_id, item_id=event.item_id):
                try:
                    for notifier in self.notifiers:
                        await notifier.notify(notice)
                except Exception as exc:  # noqa: BLE001 - a notifier's failure must not lose the event
                    if event.thread_id is not None:
                        blocked.add(event.thread_id)
                    await self._retry_later(event.id, event.attempts + 1, exc)
                    continue
                await self._done(event.id)
                done += 1
        return done

    async def _done(self, event_id: int) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sa.update(Event).where(Event.id == event_id).values(done_at=self.clock()))

    async def _retry_later(self, event_id: int, attempts: int, exc: Exception) -> None:
        delay = min(_MAX_BACKOFF, timedelta(seconds=2 ** min(attempts, 10))) * random.uniform(0.8, 1.2)
        log.warning("event %d: delivery failed (attempt %d), retrying in %.0f s: %s", event_id, attempts, delay.total_seconds(), exc)
        async with self.engine.begin() as conn:
            await conn.execute(
                sa.update(Event)
                .where(Event.id == event_id)
                .values(attempts=attempts, next_attempt_at=self.clock() + delay, last_error=str(exc)[:1000])
            )


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
