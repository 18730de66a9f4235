"""What staffing measures: when conversations arrived, how long agents took from taking one to answering it, who replied.

Times are returned as stored (UTC); the caller buckets them by hour of the week in its time zone, which SQLite
cannot do alike (it has no time zones).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import Event, EventKind, Reply, ReplyStatus, Thread


class Handled(NamedTuple):
    """One conversation's handling: when it arrived, and minutes from its first assignment to its first reply."""

    arrived_at: datetime
    minutes: float


async def arrivals(engine: AsyncEngine, since: datetime, until: datetime) -> list[datetime]:
    """When each conversation started (the customer's post) in [since, until)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Thread.opened_at).where(Thread.opened_at >= since, Thread.opened_at < until)
        )
        return list(rows.scalars())


async def handling(engine: AsyncEngine, since: datetime, until: datetime) -> list[Handled]:
    """For conversations started in [since, until): minutes from the first assignment to the first reply sent after it.

    Only conversations assigned before they were answered are measured: a reply sent straight from the triage
    message has no recorded start (Slack does not say when an agent first looked at it).
    """
    assigned = (
        sa.select(Event.thread_id.label("thread_id"), sa.func.min(Event.created_at).label("at"))
        .where(Event.kind == EventKind.ASSIGNED)
        .group_by(Event.thread_id)
        .subquery()
    )
    replied = (
        sa.select(Reply.thread_id, Reply.sent_at)
        .where(Reply.status == ReplyStatus.SENT, Reply.sent_at.is_not(None))
        .subquery()
    )
    first = (
        sa.select(replied.c.thread_id, sa.func.min(replied.c.sent_at).label("at"))
        .join(assigned, assigned.c.thread_id == replied.c.thread_id)
        .where(replied.c.sent_at >= assigned.c.at)
        .group_by(replied.c.thread_id)
        .subquery()
    )
    query = (
        sa.select(Thread.opened_at, assigned.c.at, first.c.at)
        .join(assigned, assigned.c.thread_id == Thread.id)
        .join(first, first.c.thread_id == Thread.id)
        .where(Thread.opened_at >= since, Thread.opened_at < until)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    # The columns come back as naive text on SQLite inside aggregates: read them through the UTC type again.
    return [Handled(opened, (_utc(done) - _utc(start)).total_seconds() / 60) for opened, start, done in rows]


async def replies(engine: AsyncEngine, since: datetime, until: datetime) -> list[tuple[datetime, str]]:
    """(sent at, agent) of every reply sent in [since, until)."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Reply.sent_at, Reply.agent).where(
                Reply.status == ReplyStatus.SENT, Reply.sent_at >= since, Reply.sent_at < until
            )
        )
        return [(sent_at, agent) for sent_at, agent in rows]


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
