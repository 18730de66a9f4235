"""Items and threads: what customers said, stored once per connector and external id, and the conversations they form."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store import clocks, csat
from inbox.store.events import NewEvent, add_events
from inbox.store.models import Customer, EventKind, Item, Status, Thread
from inbox.store.sqlutil import chunks, insert_new, one_of

# What a follow-up needs to know about its thread.
_THREAD_STATE = (
    Thread.id,
    Thread.external_id,
    Thread.priority,
    Thread.last_customer_at,
    Thread.sla_stage,
    Thread.cycle,
    Thread.clock_start,
    Thread.responded_at,
    Thread.resolved_at,
    Thread.assignee,
)


def known_items(conn: sa.Connection, connector: str, ids: list[str]) -> set[str]:
    """Which of the external ids `ids` the connector's items already have."""
    found: set[str] = set()
    for part in chunks(ids):
        rows = conn.execute(_known_items(conn.dialect.name), {"connector": connector, "keys": list(part)})
        found.update(rows.scalars())
    return found


@cache
def _known_items(dialect: str) -> Any:
    query = sa.select(Item.external_id).where(Item.connector == sa.bindparam("connector"))
    return one_of(dialect, query, Item.external_id)


def lock_threads(conn: sa.Connection, connector: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The connector's threads with these keys (external ids) as a follow-up needs them, locked until the commit."""
    threads: dict[str, dict[str, Any]] = {}
    for part in chunks(keys):
        for row in conn.execute(_lock_threads(conn.dialect.name), {"connector": connector, "keys": list(part)}):
            threads[row.external_id] = dict(row._mapping)  # noqa: SLF001 - SQLAlchemy's public mapping view of a Row
    return threads


@cache
def _lock_threads(dialect: str) -> Any:
    query = sa.select(*_THREAD_STATE).where(Thread.connector == sa.bindparam("connector")).with_for_update()
    return one_of(dialect, query, Thread.external_id)


def open_threads(conn: sa.Connection, values: Sequence[Mapping[str, Any]]) -> list[tuple[int, str]]:
    """Insert new threads, one statement; (id, key) of those written (another worker may have written some first)."""
    written = insert_new(conn, Thread, values, ["connector", "external_id"], ["id", "external_id"])
    return [(row.id, row.external_id) for row in written]


def add_items(conn: sa.Connection, values: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Insert items, one statement; the ids of those written by external id (another worker may have written some first)."""
    written = insert_new(conn, Item, values, ["connector", "external_id"], ["id", "external_id"])
    return {row.external_id: row.id for row in written}


def update_thread(conn: sa.Connection, thread_id: int, changes: Mapping[str, Any]) -> None:
    """Write `changes` (column values, see `clocks` for the clock's) to one thread."""
    conn.execute(sa.update(Thread).where(Thread.id == thread_id).values(**changes))


def review_rated(stars: int | None) -> dict[str, Any]:
    """Column values of a thread whose review now shows `stars` (a later poll saw it edited); the first stars stay."""
    return {"rating_after": stars, "rating_before": sa.func.coalesce(Thread.rating_before, stars)}


async def lock_thread(conn: AsyncConnection, thread_id: int) -> Any:
    """One thread, locked until the commit; None if there is no such thread."""
    return (await conn.execute(sa.select(Thread).where(Thread.id == thread_id).with_for_update())).one_or_none()


async def latest_item(conn: AsyncConnection, thread_id: int) -> Any:
    """The thread's most recent item."""
    query = sa.select(Item).where(Item.thread_id == thread_id).order_by(Item.posted_at.desc(), Item.id.desc()).limit(1)
    return (await conn.execute(query)).one()


async def assign(engine: AsyncEngine, thread_id: int, agent: str, now: datetime) -> str | None:
    """Give a thread that is not resolved to `agent`, with its event; the thread's status before (None: no such thread)."""
    async with engine.begin() as conn:
        thread = await lock_thread(conn, thread_id)
        if thread is None or thread.status == Status.RESOLVED:
            return None if thread is None else str(thread.status)
        status = Status.ASSIGNED if thread.status == Status.NEW else thread.status
        await conn.run_sync(update_thread, thread_id, {"assignee": agent, "status": status, "updated_at": now})
        await add_events(conn, now, [NewEvent(EventKind.ASSIGNED, thread_id, payload={"agent": agent})])
    return str(thread.status)


async def resolve(
    engine: AsyncEngine,
    thread_id: int,
    agent: str,
    now: datetime,
    ask_at: Callable[[Any], datetime | None] | None = None,
) -> str | None:
    """Close a thread that is not resolved yet, with its event (its clock stops); its status before (None: no such thread).

    `ask_at` says, for the thread row, when its CSAT question is due (None: not asked); the question is scheduled in
    the same transaction, if the thread was answered with a reply.
    """
    async with engine.begin() as conn:
        thread = await lock_thread(conn, thread_id)
        if thread is None or thread.status == Status.RESOLVED:
            return None if thread is None else str(thread.status)
        await conn.run_sync(update_thread, thread_id, {**clocks.resolved(now), "updated_at": now})
        await add_events(conn, now, [NewEvent(EventKind.RESOLVED, thread_id, payload={"agent": agent})])
        when = ask_at(thread) if ask_at is not None else None
        if when is not None:
            await csat.schedule(conn, thread, when, now)
    return str(thread.status)


async def first_responses(
    engine: AsyncEngine, since: datetime, until: datetime
) -> list[tuple[str, datetime, datetime]]:
    """(channel, opened at, first response at) of the threads first answered between `since` and `until`."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Thread.channel, Thread.opened_at, Thread.first_response_at).where(
                Thread.first_response_at >= since, Thread.first_response_at <= until
            )
        )
        return [(channel, opened_at, responded_at) for channel, opened_at, responded_at in rows]


# What an item update reads of each item (more columns than `sa.select`'s typed overloads take one by one).
_UPDATE_COLUMNS: list[Any] = [
    Item.id,
    Item.thread_id,
    Item.external_id,
    Item.text,
    Item.kind,
    Item.rating,
    Item.posted_at,
    Item.author_handle,
    Item.author_name,
    Item.removed_at,
    Item.customer_id,
    Thread.erased_at,
]


@cache
def _updated_items(dialect: str) -> Any:
    query = sa.select(*_UPDATE_COLUMNS).join(Thread, Thread.id == Item.thread_id)
    return one_of(dialect, query.where(Item.connector == sa.bindparam("connector")), Item.external_id)


async def apply_updates(
    engine: AsyncEngine,
    connector: str,
    updates: Sequence[tuple[str, str | None, bool, str | None]],
    now: datetime,
    retriage: Callable[[str, Mapping[str, Any]], Mapping[str, Any]] = lambda _text, _item: {},
) -> int:
    """Write what the platform reports of stored items (external id, new text, removed, author's name), each change
    announced by an `item_changed` event so Slack redraws the message; updates of unknown items are ignored.
    `retriage(text, item)` gives the columns a new text changes too (its triage). Returns how many items changed."""
    changed = 0
    async with engine.begin() as conn:
        ids = sorted({external_id for external_id, *_ in updates})
        rows: dict[str, dict[str, Any]] = {}
        for part in chunks(ids):
            query = _updated_items(conn.dialect.name)
            found = await conn.execute(query, {"connector": connector, "keys": list(part)})
            rows.update({row.external_id: dict(row._mapping) for row in found})  # noqa: SLF001
        for external_id, text, removed, name in updates:
            row = rows.get(external_id)
            if row is None or row["erased_at"] is not None:
                continue  # unknown, or erased (inbox forget, retention): an edit must not bring the words back
            values: dict[str, Any] = {}
            if text is not None and text != row["text"]:
                values["text"] = text
                values.update(retriage(text, row))
            if removed and row["removed_at"] is None:
                values["removed_at"] = now
            if name and not row["author_name"]:
                values["author_name"] = name[:255]
                await conn.execute(
                    sa.update(Customer)
                    .where(Customer.id == row["customer_id"], Customer.display_name.is_(None))
                    .values(display_name=name[:255])
                )
            if not values:
                continue
            await conn.execute(sa.update(Item).where(Item.id == row["id"]).values(**values))
            row.update(values)  # a later update of the same item in this batch compares with this
            change = "removed" if "removed_at" in values else "edited" if "text" in values else "named"
            event = NewEvent(EventKind.ITEM_CHANGED, row["thread_id"], row["id"], payload={"change": change})
            await add_events(conn, now, [event])
            changed += 1
    return changed
