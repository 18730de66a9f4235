"""Read side: a thread as an agent or a lead sees it, and the open queue most urgent first."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.models import Customer, Item, Status, Thread
from inbox.sla import ClockKind, SlaClock, SlaPolicies, SlaState, evaluate
from inbox.triage import Priority

_PRIORITIES = {p.rank: p for p in Priority}
# Breached clocks first, then warnings, then the rest; priority decides inside each group.
_URGENCY = {SlaState.BREACHED: 0, SlaState.WARNING: 1, SlaState.OK: 2, SlaState.MISSED: 3, SlaState.MET: 3}


@dataclass(frozen=True, slots=True)
class EarlierItem:
    """Something the same customer said before, in another conversation."""

    thread_id: int
    channel: str
    text: str
    posted_at: datetime
    status: str


@dataclass(frozen=True, slots=True)
class ThreadView:
    """Everything shown about one conversation: its latest customer item, triage, suggestion, clock."""

    thread_id: int
    item_id: int
    connector: str
    channel: str
    kind: str
    status: str
    assignee: str | None
    priority: Priority
    author_handle: str
    author_name: str | None
    text: str
    url: str | None
    rating: int | None
    language: str
    sentiment: str
    intent: str
    suggestion: str
    suggestion_truncated: bool
    posted_at: datetime
    messages: int
    clock: SlaClock
    earlier: list[EarlierItem] = field(default_factory=list)

    @property
    def sort_key(self) -> tuple[int, int, datetime]:
        """Most urgent first: SLA state, then priority, then the nearest deadline."""
        return (_URGENCY[self.clock.state], -self.priority.rank, self.clock.due_at)


async def open_queue(engine: AsyncEngine, policies: SlaPolicies, now: datetime, limit: int = 200) -> list[ThreadView]:
    """Open conversations (new or assigned), most urgent first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.select(Thread)
                .where(Thread.status.in_([Status.NEW, Status.ASSIGNED]))
                .order_by(Thread.due_at)
                .limit(limit)
            )
        ).all()
        views = [await _view(conn, row, policies, now, with_history=False) for row in rows]
    return sorted(views, key=lambda v: v.sort_key)


async def thread_view(engine: AsyncEngine, policies: SlaPolicies, thread_id: int, now: datetime) -> ThreadView | None:
    """One conversation with the customer's earlier conversations."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one_or_none()
        return None if row is None else await _view(conn, row, policies, now, with_history=True)


async def _view(conn: AsyncConnection, thread: Any, policies: SlaPolicies, now: datetime, *, with_history: bool) -> ThreadView:
    items = (
        await conn.execute(sa.select(Item).where(Item.thread_id == thread.id).order_by(Item.posted_at.desc(), Item.id.desc()))
    ).all()
    latest = items[0]
    customer = (await conn.execute(sa.select(Customer.handle, Customer.display_name).where(Customer.id == thread.customer_id))).one()
    clock = evaluate(
        thread.clock_start,
        thread.responded_at,
        policies.for_channel(thread.channel),
        now,
        kind=ClockKind(thread.clock_kind),
    )
    earlier: list[EarlierItem] = []
    if with_history:
        history = await conn.execute(
            sa.select(Item.thread_id, Item.channel, Item.text, Item.posted_at, Thread.status)
            .join(Thread, Thread.id == Item.thread_id)
            .where(Item.customer_id == thread.customer_id, Item.thread_id != thread.id)
            .order_by(Item.posted_at.desc())
            .limit(5)
        )
        earlier = [EarlierItem(*row) for row in history]
    return ThreadView(
        thread_id=thread.id,
        item_id=latest.id,
        connector=thread.connector,
        channel=thread.channel,
        kind=thread.kind,
        status=thread.status,
        assignee=thread.assignee,
        priority=_PRIORITIES.get(thread.priority, Priority.NORMAL),
        author_handle=latest.author_handle,
        author_name=latest.author_name or customer.display_name,
        text=latest.text,
        url=latest.url,
        rating=latest.rating,
        language=latest.language,
        sentiment=latest.sentiment,
        intent=latest.intent,
        suggestion=latest.suggestion,
        suggestion_truncated=latest.suggestion_truncated,
        posted_at=latest.posted_at,
        messages=len(items),
        clock=clock,
        earlier=earlier,
    )
