"""The outbox: events written with their cause are handed to notifiers in order, retried until done."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.display import shown_name
from inbox.logs import log_context, log_fields
from inbox.sla import SlaPolicies, clock_label, duration_text
from inbox.store import events
from inbox.store.models import EventKind, utcnow
from inbox.views import ThreadView, thread_views

log = logging.getLogger("inbox.outbox")  # the logger name users filter on, unchanged by the move into inbox.pipeline

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
        if notice.kind == EventKind.ERASED and notice.payload.get("redraw"):
            return  # another conversation's Slack message redrawn after an erasure: nothing to log
        if t is None:
            self.log.warning("%s: %s", notice.kind, notice.payload)
            return
        who = f"{t.channel} @{shown_name(t.author_handle)}"
        if notice.kind == EventKind.SLA_BREACH:
            self.log.warning(
                "SLA BREACH: thread %d (%s) has waited %s for a reply, due %s; assignee: %s",
                t.thread_id,
                who,
                duration_text(t.clock.minutes_waited),
                t.clock.due_at.strftime("%H:%M UTC"),
                t.assignee or "nobody",
            )
        elif notice.kind == EventKind.SLA_WARNING:
            self.log.warning(
                "SLA warning: thread %d (%s) has waited %s; %s; assignee: %s",
                t.thread_id,
                who,
                duration_text(t.clock.minutes_waited),
                clock_label(t.clock.minutes_left),
                t.assignee or "nobody",
            )
        elif notice.kind == EventKind.WINDOW_WARNING:
            self.log.warning(
                "reply window closing: thread %d (%s): %s; assignee: %s",
                t.thread_id,
                who,
                t.window_note() or f"closes {notice.payload.get('closes_at')}",
                t.assignee or "nobody",
            )
        elif notice.kind in (EventKind.NEW_THREAD, EventKind.FOLLOW_UP):
            # Never the customer's words: logs are shipped and kept where `inbox forget` cannot reach them.
            self.log.info(
                "%s: thread %d (%s, %s/%s/%s priority): item %s, %d characters",
                "new" if notice.kind == EventKind.NEW_THREAD else "follow-up",
                t.thread_id,
                who,
                t.language,
                t.intent,
                t.priority,
                t.item_id,
                len(t.text),
            )
        else:
            self.log.info("%s: thread %d (%s) %s", notice.kind, t.thread_id, who, notice.payload)


class Bell:
    """Rung whenever events are written, so the outbox delivers them at once instead of at its next turn."""

    def __init__(self) -> None:
        self._rung = asyncio.Event()

    def ring(self) -> None:
        """Say that events are waiting."""
        self._rung.set()

    async def wait(self, timeout: float) -> None:
        """Until rung (or already rung since the last wait), or `timeout` seconds at most."""
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._rung.wait()
        self._rung.clear()


class Outbox:
    """Delivers pending events to every notifier, one conversation's events in order, on any number of workers.

    A worker claims a batch with `FOR UPDATE SKIP LOCKED` (two workers never claim the same event) and only
    events that are the oldest pending one of their conversation, so a Slack update never overtakes its post.
    A claim runs out after `claim_seconds`: a dead worker's events are then delivered by another.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        notifiers: Sequence[Notifier],
        policies: SlaPolicies,
        clock: Callable[[], datetime] = utcnow,
        *,
        worker: str = "local",
        claim_seconds: float = 60.0,
        concurrency: int = 8,
    ) -> None:
        self.engine = engine
        self.notifiers = list(notifiers)
        self.policies = policies
        self.clock = clock
        self.worker = worker
        self.claim = timedelta(seconds=claim_seconds)
        self.concurrency = concurrency

    async def dispatch(self, limit: int = 200, rounds: int = 50) -> int:
        """Deliver what is due now, claim by claim, until nothing is left (or `rounds` claims); return how many were done."""
        done = 0
        for _ in range(rounds):
            batch = await self._claim(limit)
            if not batch:
                break
            views = await thread_views(
                self.engine, self.policies, [e.thread_id for e in batch if e.thread_id], self.clock()
            )
            slots = asyncio.Semaphore(self.concurrency)

            async def deliver(event: Any) -> bool:
                # Bound to this round's `slots` and `views` on purpose: awaited within the round (gather below).
                async with slots:  # noqa: B023
                    return await self._deliver(event, views.get(event.thread_id) if event.thread_id else None)  # noqa: B023

            # The batch holds at most one event per conversation, so they may go out side by side.
            delivered = await asyncio.gather(*(deliver(e) for e in batch))
            # Marked done together: after a crash before this, the notifiers' own records stop a second post.
            await self._done([e.id for e, ok in zip(batch, delivered, strict=True) if ok])
            done += sum(delivered)
        return done

    async def _claim(self, limit: int) -> list[Any]:
        now = self.clock()
        return await events.claim(self.engine, self.worker, now, now + self.claim, limit)

    @log_fields(event_id="event.id", thread_id="event.thread_id", item_id="event.item_id")
    async def _deliver(self, event: Any, thread: ThreadView | None) -> bool:
        if self.clock() >= event.claimed_until - self.claim / 2:
            # Too little of the claim is left for a slow Slack call: hand the event back untouched.
            await events.hand_back(self.engine, event.id, self.worker)
            return False
        notice = Notice(event.id, EventKind(event.kind), event.payload or {}, event.created_at, thread)
        with log_context(connector=thread.connector if thread else notice.payload.get("connector")):
            try:
                async with asyncio.timeout(self.claim.total_seconds() / 2):
                    for notifier in self.notifiers:
                        await notifier.notify(notice)
            except Exception as exc:  # noqa: BLE001 - a notifier's failure must not lose the event
                await self._retry_later(event.id, event.attempts + 1, exc)
                return False
        return True

    async def _done(self, event_ids: list[int]) -> None:
        await events.mark_done(self.engine, event_ids, self.worker, self.clock())

    async def _retry_later(self, event_id: int, attempts: int, exc: BaseException) -> None:
        delay = min(_MAX_BACKOFF, timedelta(seconds=2 ** min(attempts, 10))) * random.uniform(0.8, 1.2)
        reason = str(exc) or type(exc).__name__
        log.warning(
            "event %d: delivery failed (attempt %d), retrying in %.0f s: %s",
            event_id,
            attempts,
            delay.total_seconds(),
            reason,
        )
        await events.retry_later(self.engine, event_id, self.worker, attempts, self.clock() + delay, reason)
