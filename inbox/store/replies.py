"""Replies: recorded before sending (one per thread and clock cycle), claimed by the worker sending them, marked after."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.connector import STANDARD_MODE
from inbox.store import clocks
from inbox.store.events import NewEvent, add_events
from inbox.store.models import EventKind, Item, Reply, ReplyStatus, Thread


class Claim(NamedTuple):
    """The worker sending a reply, and until when the reply is its own."""

    worker: str
    until: datetime


class Existing(NamedTuple):
    """A reply of the same cycle recorded before, pending or sent: it wins over a new one."""

    id: int
    external_id: str | None
    url: str | None


async def record(
    conn: AsyncConnection,
    thread: Any,
    item_id: int,
    text: str,
    agent: str,
    now: datetime,
    claim: Claim,
    *,
    mode: str = STANDARD_MODE,
) -> int | Existing:
    """Record a reply to the thread's current cycle in `mode` before sending it (inside the caller's transaction, the
    thread locked); the earlier one when one is pending or sent already. A mode other than the ordinary reply (a
    private reply) goes to an item once, whatever the cycle: the earlier one wins then too."""
    values = {"claimed_by": claim.worker, "claimed_until": claim.until}
    same_cycle = sa.select(Reply).where(Reply.thread_id == thread.id, Reply.cycle == thread.cycle, Reply.mode == mode)
    if mode != STANDARD_MODE:
        earlier = (
            await conn.execute(
                sa.select(Reply)
                .where(Reply.item_id == item_id, Reply.mode == mode, Reply.status != ReplyStatus.FAILED)
                .limit(1)
            )
        ).one_or_none()
        if earlier is not None:
            return Existing(earlier.id, earlier.external_id, earlier.url)
    existing = (await conn.execute(same_cycle)).one_or_none()
    if existing is not None and existing.status != ReplyStatus.FAILED:
        return Existing(existing.id, existing.external_id, existing.url)
    if existing is not None:
        await conn.execute(
            sa.update(Reply)
            .where(Reply.id == existing.id, Reply.status == ReplyStatus.FAILED)
            .values(
                status=ReplyStatus.PENDING,
                text=text,
                agent=agent,
                item_id=item_id,
                created_at=now,
                error=None,
                **values,
            )
        )
        return int(existing.id)
    try:
        async with conn.begin_nested():
            result = await conn.execute(
                sa.insert(Reply)
                .values(
                    thread_id=thread.id,
                    item_id=item_id,
                    cycle=thread.cycle,
                    mode=mode,
                    text=text,
                    agent=agent,
                    status=ReplyStatus.PENDING,
                    created_at=now,
                    **values,
                )
                .returning(Reply.id)
            )
            return int(result.scalar_one())
    except IntegrityError:
        # Another click won the race for this cycle.
        winner = (await conn.execute(same_cycle)).one()
        return Existing(winner.id, winner.external_id, winner.url)


async def claim_leftover(engine: AsyncEngine, now: datetime, claim: Claim) -> Any:
    """Claim the oldest pending reply whose claim ran out (`FOR UPDATE SKIP LOCKED`), with its item and thread key.

    The row has the item's columns, `reply_id`, `reply_text` and `thread_key`; None when there is none.
    """
    pending = Reply.__table__.alias("pending")
    leftover = (
        sa.select(pending.c.id)
        .where(
            pending.c.status == ReplyStatus.PENDING,
            sa.or_(pending.c.claimed_until.is_(None), pending.c.claimed_until < now),
        )
        .order_by(pending.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        reply_id = (
            await conn.execute(
                sa.update(Reply)
                .where(Reply.id.in_(leftover.scalar_subquery()))
                .values(claimed_by=claim.worker, claimed_until=claim.until)
                .returning(Reply.id)
            )
        ).scalar_one_or_none()
        if reply_id is None:
            return None
        return (
            await conn.execute(
                sa.select(
                    Reply.id.label("reply_id"),
                    Reply.text.label("reply_text"),
                    Reply.mode.label("reply_mode"),
                    Thread.external_id.label("thread_key"),
                    Item,
                )
                .join(Thread, Thread.id == Reply.thread_id)
                .join(Item, Item.id == Reply.item_id)
                .where(Reply.id == reply_id)
            )
        ).one()


async def renew_claim(engine: AsyncEngine, reply_id: int, claim: Claim) -> bool:
    """Extend `claim.worker`'s claim on a pending reply to `claim.until`; False if the reply is no longer its own."""
    async with engine.begin() as conn:
        renewed = await conn.execute(
            sa.update(Reply)
            .where(Reply.id == reply_id, Reply.status == ReplyStatus.PENDING, Reply.claimed_by == claim.worker)
            .values(claimed_until=claim.until)
        )
    return bool(renewed.rowcount)


async def release(engine: AsyncEngine, reply_id: int) -> None:
    """Free a pending reply's claim, so reply recovery looks at it."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(Reply)
            .where(Reply.id == reply_id, Reply.status == ReplyStatus.PENDING)
            .values(claimed_by=None, claimed_until=None)
        )


async def mark_sent(engine: AsyncEngine, reply_id: int, external_id: str | None, url: str | None, now: datetime) -> Any:
    """Record a reply as sent; the thread's clock stops if the reply answers its current cycle, with an event.

    Returns the stopped clock (channel, clock_kind, clock_start), or None when the thread moved on to another cycle.
    """
    async with engine.begin() as conn:
        reply = (await conn.execute(sa.select(Reply).where(Reply.id == reply_id))).one()
        await conn.execute(
            sa.update(Reply)
            .where(Reply.id == reply_id)
            .values(
                status=ReplyStatus.SENT,
                external_id=external_id,
                url=url,
                sent_at=now,
                error=None,
                claimed_by=None,
                claimed_until=None,
            )
        )
        answered = await conn.execute(
            sa.update(Thread)
            .where(Thread.id == reply.thread_id, Thread.cycle == reply.cycle)
            .values(**clocks.replied(now), updated_at=now)
            .returning(Thread.channel, Thread.clock_kind, Thread.clock_start)
        )
        clock = answered.one_or_none()
        await add_events(
            conn,
            now,
            [NewEvent(EventKind.REPLIED, reply.thread_id, payload={"reply_id": reply_id, "agent": reply.agent})],
        )
    return clock


async def mark_failed(engine: AsyncEngine, reply_id: int, error: str) -> None:
    """Record that the platform refused a reply; a later click may send the cycle's reply again."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(Reply)
            .where(Reply.id == reply_id)
            .values(status=ReplyStatus.FAILED, error=error[:1000], claimed_by=None, claimed_until=None)
        )


async def get(engine: AsyncEngine, reply_id: int) -> Any:
    """A reply's agent, text and time sent, or None."""
    async with engine.connect() as conn:
        return (
            await conn.execute(sa.select(Reply.agent, Reply.text, Reply.sent_at).where(Reply.id == reply_id))
        ).one_or_none()


# A report may come after a later one (Meta does not promise the order): a state never goes back.
_DELIVERY_RANK = {"sent": 1, "delivered": 2, "read": 3, "failed": 4}


class Undelivered(NamedTuple):
    """A sent reply the platform reported failed: its id and thread, and the platform's reason."""

    reply_id: int
    thread_id: int
    error: str


async def record_deliveries(
    engine: AsyncEngine, connector: str, reports: list[tuple[str, str, datetime, str | None]], now: datetime
) -> list[Undelivered]:
    """Record the platform's reports (its reply id, state, time, error) on our replies of `connector`, in one
    transaction; a failed one marks the reply failed (so Send may try again) with a `reply_failed` event.

    Reports on messages this inbox did not send are ignored. Returns the replies newly reported failed.
    """
    failed: list[Undelivered] = []
    if not reports:
        return failed
    async with engine.begin() as conn:
        ids = sorted({external_id for external_id, *_ in reports})
        rows = {
            row.external_id: row
            for row in await conn.execute(
                sa.select(Reply.id, Reply.thread_id, Reply.external_id, Reply.delivery, Reply.agent)
                .join(Thread, Thread.id == Reply.thread_id)
                .where(Reply.external_id.in_(ids), Thread.connector == connector)
            )
        }
        current = {external_id: row.delivery or "" for external_id, row in rows.items()}
        for external_id, state, at, error in reports:
            row = rows.get(external_id)
            if row is None or _DELIVERY_RANK.get(state, 0) <= _DELIVERY_RANK.get(current[external_id], 0):
                continue
            current[external_id] = state
            values: dict[str, Any] = {"delivery": state, "delivery_at": at}
            if state == "failed":
                reason = (error or "the platform did not deliver it")[:1000]
                values |= {"status": ReplyStatus.FAILED, "error": reason}
                failed.append(Undelivered(row.id, row.thread_id, reason))
                await add_events(
                    conn,
                    now,
                    [
                        NewEvent(
                            EventKind.REPLY_FAILED,
                            row.thread_id,
                            payload={"reply_id": row.id, "agent": row.agent, "error": reason},
                        )
                    ],
                )
            await conn.execute(sa.update(Reply).where(Reply.id == row.id).values(**values))
    return failed
