"""Read side: a thread as an agent or a lead sees it, and the open queue most urgent first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import Customer, Item, Thread, thread_is_open
from inbox.store.sqlutil import chunks
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


# A thread with the name its customer last showed, in one query.
_WITH_CUSTOMER = sa.select(Thread, Customer.display_name.label("customer_display_name")).join(Customer, Customer.id == Thread.customer_id)
_HISTORY = 5  # earlier conversations shown with a thread


async def open_queue(engine: AsyncEngine, policies: SlaPolicies, now: datetime, limit: int = 200) -> list[ThreadView]:
    """Open conversations (new or assigned), most urgent first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                _WITH_CUSTOMER
                .where(thread_is_open())
                .order_by(Thread.due_at)
                .limit(limit)
            )
        ).all()
        views = await _views(conn, rows, policies, now, with_history=False)
    return sorted(views.values(), key=lambda v: v.sort_key)


async def thread_view(engine: AsyncEngine, policies: SlaPolicies, thread_id: int, now: datetime) -> ThreadView | None:
    """One conversation with the customer's earlier conversations."""
    return (await thread_views(engine, policies, [thread_id], now)).get(thread_id)


async def thread_views(engine: AsyncEngine, policies: SlaPolicies, thread_ids: Sequence[int], now: datetime) -> dict[int, ThreadView]:
    """Several conversations at once (three queries, however many), each with the customer's earlier ones."""
    views: dict[int, ThreadView] = {}
    async with engine.connect() as conn:
        for part in chunks(sorted(set(thread_ids))):
            rows = (await conn.execute(_WITH_CUSTOMER.where(Thread.id.in_(part)))).all()
            views.update(await _views(conn, rows, policies, now, with_history=True))
    return views


async def _views(conn: AsyncConnection, threads: Sequence[Any], policies: SlaPolicies, now: datetime, *, with_history: bool) -> dict[int, ThreadView]:
    if not threads:
        return {}
    ids = [t.id for t in threads]
    # Each thread's latest item and how many it has, without reading every item of a long conversation.
    ranked = sa.select(
        Item,
        sa.func.row_number().over(partition_by=Item.thread_id, order_by=(Item.posted_at.desc(), Item.id.desc())).label("rank"),
        sa.func.count().over(partition_by=Item.thread_id).label("messages"),
    ).where(Item.thread_id.in_(ids)).subquery()
    latest = {row.thread_id: row for row in await conn.execute(sa.select(ranked).where(ranked.c.rank == 1))}
    history: dict[int, list[Any]] = {}
    if with_history:
        history = await _history(conn, threads, latest)
    views: dict[int, ThreadView] = {}
    for thread in threads:
        item = latest.get(thread.id)
        if item is None:
            continue  # a thread whose first item's transaction has not committed yet: nothing to show
        earlier = [EarlierItem(r.thread_id, r.channel, r.text, r.posted_at, r.status) for r in history.get(thread.customer_id, [])
                   if r.thread_id != thread.id][:_HISTORY]
        views[thread.id] = _view(thread, item, policies, now, earlier)
    return views


async def _history(conn: AsyncConnection, threads: Sequence[Any], latest: dict[int, Any]) -> dict[int, list[Any]]:
    """Each customer's most recent items, enough of them that after leaving out a thread's own, five remain."""
    own: dict[int, int] = {}
    for thread in threads:
        if thread.id in latest:
            own[thread.customer_id] = own.get(thread.customer_id, 0) + latest[thread.id].messages
    if not own:
        return {}
    ranked = (
        sa.select(
            Item.customer_id, Item.thread_id, Item.channel, Item.text, Item.posted_at, Thread.status,
            sa.func.row_number().over(partition_by=Item.customer_id, order_by=(Item.posted_at.desc(), Item.id.desc())).label("rank"),
        )
        .join(Thread, Thread.id == Item.thread_id)
        .where(Item.customer_id.in_(list(own)))
        .subquery()
    )
    rows = await conn.execute(
        sa.select(ranked).where(ranked.c.rank <= _HISTORY + max(own.values())).order_by(ranked.c.customer_id, ranked.c.rank)
    )
    found: dict[int, list[Any]] = {}
    for row in rows:
        found.setdefault(row.customer_id, []).append(row)
    return found


def _view(thread: Any, latest: Any, policies: SlaPolicies, now: datetime, earlier: list[EarlierItem]) -> ThreadView:
    clock = evaluate(
        thread.clock_start,
        thread.responded_at,
        policies.for_channel(thread.channel),
        now,
        kind=ClockKind(thread.clock_kind),
    )
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
        author_name=latest.author_name or thread.customer_display_name,
        text=latest.text,
        url=latest.url,
        rating=latest.rating,
        language=latest.language,
        sentiment=latest.sentiment,
        intent=latest.intent,
        suggestion=latest.suggestion,
        suggestion_truncated=latest.suggestion_truncated,
        posted_at=latest.posted_at,
        messages=latest.messages,
        clock=clock,
        earlier=earlier,
    )
