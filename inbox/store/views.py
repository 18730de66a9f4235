"""The read side: threads with their latest item, message count and the customer's earlier items, in three queries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.models import CsatQuestion, Customer, Item, Thread, thread_is_open
from inbox.store.sqlutil import chunks

# A thread with the name its customer last showed, in one query.
_WITH_CUSTOMER = (
    sa.select(
        Thread,
        Customer.display_name.label("customer_display_name"),
        CsatQuestion.status.label("csat_status"),
        CsatQuestion.score.label("csat_score"),
    )
    .join(Customer, Customer.id == Thread.customer_id)
    .outerjoin(CsatQuestion, CsatQuestion.thread_id == Thread.id)
)
HISTORY = 5  # earlier conversations shown with a thread


class ThreadRows(NamedTuple):
    """One thread as stored: its row (with `customer_display_name`, `csat_status` and `csat_score`), its latest item (with `messages`), and up to
    HISTORY of the customer's items in other threads, newest first (with the other thread's `status`)."""

    thread: Any
    latest: Any
    earlier: list[Any]


async def open_threads(engine: AsyncEngine, limit: int) -> list[ThreadRows]:
    """Open threads (new or assigned), nearest deadline first, at most `limit`; without their earlier items."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_WITH_CUSTOMER.where(thread_is_open()).order_by(Thread.due_at).limit(limit))).all()
        return await _with_items(conn, rows, with_history=False)


async def threads(engine: AsyncEngine, thread_ids: Sequence[int]) -> list[ThreadRows]:
    """Several threads at once (three queries, however many), each with the customer's earlier items."""
    found: list[ThreadRows] = []
    async with engine.connect() as conn:
        for part in chunks(sorted(set(thread_ids))):
            rows = (await conn.execute(_WITH_CUSTOMER.where(Thread.id.in_(part)))).all()
            found.extend(await _with_items(conn, rows, with_history=True))
    return found


async def _with_items(conn: AsyncConnection, threads: Sequence[Any], *, with_history: bool) -> list[ThreadRows]:
    if not threads:
        return []
    ids = [t.id for t in threads]
    # Each thread's latest item and how many it has, without reading every item of a long conversation.
    ranked = (
        sa.select(
            Item,
            sa.func.row_number()
            .over(partition_by=Item.thread_id, order_by=(Item.posted_at.desc(), Item.id.desc()))
            .label("rank"),
            sa.func.count().over(partition_by=Item.thread_id).label("messages"),
        )
        .where(Item.thread_id.in_(ids))
        .subquery()
    )
    latest = {row.thread_id: row for row in await conn.execute(sa.select(ranked).where(ranked.c.rank == 1))}
    history: dict[int, list[Any]] = {}
    if with_history:
        history = await _history(conn, threads, latest)
    found: list[ThreadRows] = []
    for thread in threads:
        item = latest.get(thread.id)
        if item is None:
            continue  # a thread whose first item's transaction has not committed yet: nothing to show
        earlier = [r for r in history.get(thread.customer_id, []) if r.thread_id != thread.id][:HISTORY]
        found.append(ThreadRows(thread, item, earlier))
    return found


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
            Item.customer_id,
            Item.thread_id,
            Item.channel,
            Item.text,
            Item.posted_at,
            Thread.status,
            sa.func.row_number()
            .over(partition_by=Item.customer_id, order_by=(Item.posted_at.desc(), Item.id.desc()))
            .label("rank"),
        )
        .join(Thread, Thread.id == Item.thread_id)
        # An erased conversation is not shown under the customer's others (its texts are gone).
        .where(Item.customer_id.in_(list(own)), Thread.erased_at.is_(None))
        .subquery()
    )
    rows = await conn.execute(
        sa.select(ranked)
        .where(ranked.c.rank <= HISTORY + max(own.values()))
        .order_by(ranked.c.customer_id, ranked.c.rank)
    )
    found: dict[int, list[Any]] = {}
    for row in rows:
        found.setdefault(row.customer_id, []).append(row)
    return found
