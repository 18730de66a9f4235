"""Outbox events: written beside their cause, claimed by one worker at a time, marked done or retried later."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import Event, EventKind
from inbox.store.sqlutil import chunks, insert_new


class NewEvent(NamedTuple):
    """Something to announce, written in the transaction of what it announces."""

    kind: EventKind
    thread_id: int | None = None
    item_id: int | None = None
    payload: dict[str, Any] | None = None


async def add_events(conn: AsyncConnection, now: datetime, events: Iterable[NewEvent]) -> None:
    """Record events (inside the caller's transaction), in one statement."""
    await conn.run_sync(insert_events, now, list(events))


def insert_events(conn: sa.Connection, now: datetime, events: Iterable[NewEvent]) -> None:
    """`add_events` for plain (sync) code."""
    rows = [
        {
            "kind": e.kind,
            "thread_id": e.thread_id,
            "item_id": e.item_id,
            "payload": e.payload or {},
            "created_at": now,
            "attempts": 0,
        }
        for e in events
    ]
    insert_new(conn, Event, rows)


async def claim(engine: AsyncEngine, worker: str, now: datetime, until: datetime, limit: int) -> list[Any]:
    """Claim up to `limit` due events for `worker` until `until`, each the oldest pending one of its conversation.

    `FOR UPDATE SKIP LOCKED`: two workers never claim the same event; a claim that ran out is free again.
    """
    head = Event.__table__.alias("head")
    older = Event.__table__.alias("older")
    earlier_pending = (
        sa.select(older.c.id)
        .where(older.c.done_at.is_(None), older.c.thread_id == head.c.thread_id, older.c.id < head.c.id)
        .exists()
    )
    heads = (
        sa.select(head.c.id)
        .where(
            head.c.done_at.is_(None),
            sa.or_(head.c.next_attempt_at.is_(None), head.c.next_attempt_at <= now),
            sa.or_(head.c.claimed_until.is_(None), head.c.claimed_until < now),
            ~earlier_pending,
        )
        .order_by(head.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        claimed = await conn.execute(
            sa.update(Event)
            .where(Event.id.in_(heads.scalar_subquery()))
            .values(claimed_by=worker, claimed_until=until)
            .returning(*Event.__table__.c)
        )
        return sorted(claimed.all(), key=lambda e: e.id)


async def mark_done(engine: AsyncEngine, event_ids: Sequence[int], worker: str, now: datetime) -> None:
    """Mark delivered the events among `event_ids` that `worker` still holds."""
    if not event_ids:
        return
    async with engine.begin() as conn:
        for part in chunks(event_ids):
            await conn.execute(
                sa.update(Event)
                .where(Event.id.in_(part), Event.claimed_by == worker)
                .values(done_at=now, claimed_by=None, claimed_until=None)
            )


async def hand_back(engine: AsyncEngine, event_id: int, worker: str) -> None:
    """Give up `worker`'s claim on an event untouched, so any worker may deliver it now."""
    await _finish(engine, event_id, worker, claimed_by=None, claimed_until=None)


async def retry_later(engine: AsyncEngine, event_id: int, worker: str, attempts: int, at: datetime, error: str) -> None:
    """Record a failed delivery and free the event for another try at `at`."""
    await _finish(
        engine,
        event_id,
        worker,
        attempts=attempts,
        next_attempt_at=at,
        last_error=error[:1000],
        claimed_by=None,
        claimed_until=None,
    )


async def _finish(engine: AsyncEngine, event_id: int, worker: str, **values: Any) -> None:
    # Only while this worker's claim holds: after it ran out, the event is another worker's.
    async with engine.begin() as conn:
        await conn.execute(sa.update(Event).where(Event.id == event_id, Event.claimed_by == worker).values(**values))
