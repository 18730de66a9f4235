"""What the reports page reads besides the figures: the spread of first-response times, reviews' stars moving, and
the conversations behind a breach count.

All three read the window's conversations as `inbox.store.reports` defines them (the same outcomes, minutes and
groups), so a count on the page and the list it links to agree with `inbox report`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import SlackMessage, Thread
from inbox.store.reports import KEYS, Scope, _conversations, _utc

BREACHED = ("missed", "breached")  # what a breach count counts: answered late, or still waiting past the deadline
BREACH_LIST_MAX = 500
BUCKET_SLACK = 0.001  # minutes (60 ms)


@dataclass(frozen=True, slots=True)
class Breach:
    """A conversation answered after its deadline, or still waiting past it, and its triage message in Slack."""

    conversation_id: int
    channel: str
    connector: str
    customer: str
    started_at: datetime
    first_response_at: datetime | None
    first_response_minutes: float | None
    sla_target_minutes: float | None
    outcome: str
    replied_by: str | None
    slack_channel: str | None
    slack_ts: str | None


async def minutes_histogram(engine: AsyncEngine, scope: Scope, edges: Sequence[float]) -> list[int]:
    """First responses made, counted in buckets [edges[i], edges[i+1]) and a last one from edges[-1] on."""
    minutes = Thread.first_response_minutes
    # SQLite's minutes come from Julian days, a few microseconds off: 5 minutes may read 4.9999999. Within
    # BUCKET_SLACK of an edge counts as on it, so an answer after exactly 5 minutes is in 5–10.
    bucket = sa.case(
        *((minutes < edge - BUCKET_SLACK, index) for index, edge in enumerate(edges[1:])),
        else_=len(edges) - 1,
    ).label("bucket")
    # The window's minutes, read from the (opened_at, first_response_minutes) index alone.
    query = (
        sa.select(bucket, sa.func.count())
        .where(Thread.opened_at >= scope.start, Thread.opened_at < scope.end, minutes.is_not(None))
        .group_by(bucket)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    counts = [0] * len(edges)
    for index, count in rows:
        counts[int(index)] = int(count)
    return counts


async def rating_changes(engine: AsyncEngine, scope: Scope) -> tuple[int, int]:
    """Reviews of the window whose stars went up after they opened (recovered), and down (lowered)."""
    async with engine.connect() as conn:
        query = sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((Thread.rating_after > Thread.rating_before, 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((Thread.rating_after < Thread.rating_before, 1), else_=0)), 0),
        ).where(
            Thread.opened_at >= scope.start,
            Thread.opened_at < scope.end,
            Thread.rating_before.is_not(None),
            Thread.rating_after.is_not(None),
        )
        up, down = (await conn.execute(query)).one()
    return int(up), int(down)


async def breaches(
    engine: AsyncEngine, scope: Scope, by: str | None, group: str | None, limit: int = BREACH_LIST_MAX
) -> list[Breach]:
    """The window's breached conversations (of one `by` group, when given), oldest first, at most `limit`."""
    if by is not None and by not in KEYS:
        raise ValueError(f"unknown grouping {by!r}; use one of {', '.join(KEYS)}")
    async with engine.connect() as conn:
        conversation = _conversations(conn.dialect.name, scope, by=by, detail=True)
        c = conversation.c
        query: Any = (
            sa.select(conversation, SlackMessage.channel.label("slack_channel"), SlackMessage.ts.label("slack_ts"))
            .outerjoin(SlackMessage, SlackMessage.thread_id == c.conversation_id)
            .where(c.outcome.in_(BREACHED))
            .order_by(c.started_at, c.conversation_id)
            .limit(limit)
        )
        if by is not None:
            # The group as the page shows it, in text: an hour of the week is its number.
            query = query.where(sa.cast(c.g, sa.String) == group) if group is not None else query.where(c.g.is_(None))
        rows = (await conn.execute(query)).all()
    return [
        Breach(
            conversation_id=row.conversation_id,
            channel=row.channel,
            connector=row.connector,
            customer=row.customer,
            started_at=_utc(row.started_at),
            first_response_at=_utc(row.first_response_at),
            first_response_minutes=None if row.minutes is None else float(row.minutes),
            sla_target_minutes=None if row.sla_target_minutes is None else float(row.sla_target_minutes),
            outcome=row.outcome,
            replied_by=row.replied_by,
            slack_channel=row.slack_channel,
            slack_ts=row.slack_ts,
        )
        for row in rows
    ]
