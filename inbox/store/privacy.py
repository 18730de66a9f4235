"""Customers' data under the GDPR: find a customer, gather all that is held about them, erase it, find what retention erases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.events import NewEvent, add_events
from inbox.store.models import (
    CsatQuestion,
    CsatStatus,
    Customer,
    Erasure,
    Event,
    EventKind,
    Item,
    Pushed,
    Reply,
    ReplyStatus,
    SlackMessage,
    SlackPost,
    Status,
    Thread,
)
from inbox.store.sqlutil import chunks

# What an erased item's author becomes when only some of its customer's conversations are erased (retention):
# the customer keeps their handle on their other conversations, so no pseudonym of theirs is shown here.
ERASED_AUTHOR = "erased"


@dataclass(frozen=True, slots=True)
class Held:
    """How much is held about some customers or conversations: what `inbox forget` and retention show before erasing."""

    customers: int
    threads: int
    items: int
    replies: int
    csat: int
    slack_messages: int


async def find_customers(engine: AsyncEngine, channel: str, handle: str) -> list[Any]:
    """The customer rows known as `handle` on `channel` (with or without a leading @), erased or not."""
    handles = {handle, handle.removeprefix("@")}
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Customer).where(Customer.channel == channel, Customer.handle.in_(sorted(handles)))
        )
        return list(rows)


async def customer_threads(engine: AsyncEngine, customer_ids: Sequence[int]) -> list[int]:
    """Every conversation of these customers, or holding an item of theirs."""
    async with engine.connect() as conn:
        return await _threads_of(conn, customer_ids)


async def _threads_of(conn: AsyncConnection, customer_ids: Sequence[int], *, unerased: bool = False) -> list[int]:
    found: set[int] = set()
    for part in chunks(list(customer_ids)):
        own = sa.select(Thread.id).where(Thread.customer_id.in_(part))
        holding = sa.select(Item.thread_id).join(Thread, Thread.id == Item.thread_id).where(Item.customer_id.in_(part))
        if unerased:
            own, holding = own.where(Thread.erased_at.is_(None)), holding.where(Thread.erased_at.is_(None))
        found.update((await conn.execute(own)).scalars())
        found.update((await conn.execute(holding)).scalars())
    return sorted(found)


async def gather(engine: AsyncEngine, customer_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Everything held about these customers, one plain dict per customer, each with its conversations in full."""
    async with engine.connect() as conn:
        customers = list(
            await conn.execute(sa.select(Customer).where(Customer.id.in_(list(customer_ids))).order_by(Customer.id))
        )
        found = []
        for customer in customers:
            thread_ids = await _threads_of(conn, [customer.id])
            found.append(
                {
                    "channel": customer.channel,
                    "handle": customer.handle,
                    "display_name": customer.display_name,
                    "first_seen_at": customer.first_seen_at,
                    "last_seen_at": customer.last_seen_at,
                    "erased_at": customer.erased_at,
                    "conversations": [await _conversation(conn, thread_id) for thread_id in thread_ids],
                }
            )
        return found


async def _conversation(conn: AsyncConnection, thread_id: int) -> dict[str, Any]:
    thread = (await conn.execute(sa.select(Thread).where(Thread.id == thread_id))).one()
    items = await conn.execute(sa.select(Item).where(Item.thread_id == thread_id).order_by(Item.posted_at, Item.id))
    replies = await conn.execute(sa.select(Reply).where(Reply.thread_id == thread_id).order_by(Reply.created_at))
    csat = (await conn.execute(sa.select(CsatQuestion).where(CsatQuestion.thread_id == thread_id))).one_or_none()
    history = await conn.execute(
        sa.select(Event.kind, Event.payload, Event.created_at)
        .where(Event.thread_id == thread_id, Event.kind.in_([EventKind.ASSIGNED, EventKind.RESOLVED]))
        .order_by(Event.id)
    )
    return {
        "id": thread.id,
        "connector": thread.connector,
        "channel": thread.channel,
        "kind": thread.kind,
        "external_id": thread.external_id,
        "status": thread.status,
        "assignee": thread.assignee,
        "priority": thread.priority,
        "opened_at": thread.opened_at,
        "first_response_at": thread.first_response_at,
        "resolved_at": thread.resolved_at,
        "rating_before": thread.rating_before,
        "rating_after": thread.rating_after,
        "erased_at": thread.erased_at,
        "items": [
            {
                "id": i.id,
                "external_id": i.external_id,
                "kind": i.kind,
                "author_handle": i.author_handle,
                "author_name": i.author_name,
                "text": i.text,
                "url": i.url,
                "rating": i.rating,
                "posted_at": i.posted_at,
                "received_at": i.ingested_at,
                "language": i.language,
                "sentiment": i.sentiment,
                "intent": i.intent,
                "priority": i.priority,
                "suggestion": i.suggestion,
            }
            for i in items
        ],
        "replies": [
            {
                "text": r.text,
                "mode": r.mode,
                "agent": r.agent,
                "status": r.status,
                "created_at": r.created_at,
                "sent_at": r.sent_at,
                "url": r.url,
                "delivery": r.delivery,
            }
            for r in replies
        ],
        "csat": None
        if csat is None
        else {
            "question": csat.text,
            "status": csat.status,
            "asked_at": csat.sent_at,
            "score": csat.score,
            "answered_at": csat.answered_at,
        },
        "assignments": [
            {"action": str(kind), "agent": (payload or {}).get("agent"), "at": at} for kind, payload, at in history
        ],
        "slack_messages": await _slack_messages(conn, [thread_id]),
    }


async def _slack_messages(conn: AsyncConnection, thread_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The Slack messages posted about these conversations: the triage message and every post of their events."""
    found: list[dict[str, Any]] = []
    for part in chunks(list(thread_ids)):
        triage = await conn.execute(
            sa.select(SlackMessage.thread_id, SlackMessage.channel, SlackMessage.ts).where(
                SlackMessage.thread_id.in_(part)
            )
        )
        found.extend({"what": "triage", "thread_id": t, "channel": c, "ts": ts} for t, c, ts in triage)
        posts = await conn.execute(
            sa.select(Event.thread_id, SlackPost.event_id, SlackPost.channel, SlackPost.ts)
            .join(Event, Event.id == SlackPost.event_id)
            .where(Event.thread_id.in_(part))
        )
        found.extend({"what": "post", "thread_id": t, "event_id": e, "channel": c, "ts": ts} for t, e, c, ts in posts)
    return found


async def held(engine: AsyncEngine, customer_ids: Sequence[int], thread_ids: Sequence[int]) -> Held:
    """How many customers, conversations, items, replies, CSAT questions and Slack messages an erasure touches."""
    async with engine.connect() as conn:

        async def count(query: Any) -> int:
            total = 0
            for part in chunks(list(thread_ids)):
                total += int((await conn.execute(query(part))).scalar_one())
            return total

        return Held(
            customers=len(customer_ids),
            threads=len(thread_ids),
            items=await count(lambda p: sa.select(sa.func.count()).select_from(Item).where(Item.thread_id.in_(p))),
            replies=await count(lambda p: sa.select(sa.func.count()).select_from(Reply).where(Reply.thread_id.in_(p))),
            csat=await count(
                lambda p: sa.select(sa.func.count()).select_from(CsatQuestion).where(CsatQuestion.thread_id.in_(p))
            ),
            slack_messages=len(await _slack_messages(conn, thread_ids)),
        )


async def erase(
    engine: AsyncEngine,
    *,
    customers: dict[int, str],
    thread_ids: Sequence[int],
    now: datetime,
    reason: str,
    by: str,
) -> Held:
    """In one transaction: erase the texts and names of these conversations, give these customers their pseudonym
    (`customers`: id to pseudonym), record the erasure (never whom), and queue the edit of their Slack messages."""
    threads = sorted(set(thread_ids))
    before = await held(engine, list(customers), threads)
    async with engine.begin() as conn:
        # A conversation of theirs that began since the plan was made goes too.
        threads = sorted(set(threads) | set(await _threads_of(conn, list(customers), unerased=True)))
        # The customer's other conversations show these under "earlier": their Slack messages are redrawn without.
        shown_beside = await _other_messages(conn, threads)
        for part in chunks(threads):
            await _erase_threads(conn, part, now)
        # A customer's own pseudonym on their items; an item of a customer who keeps other conversations: ERASED_AUTHOR.
        for customer_id, pseudonym in sorted(customers.items()):
            await conn.execute(
                sa.update(Customer)
                .where(Customer.id == customer_id)
                .values(handle=pseudonym, display_name=None, erased_at=now)
            )
            await conn.execute(sa.update(Item).where(Item.customer_id == customer_id).values(author_handle=pseudonym))
        await conn.execute(
            sa.insert(Erasure).values(
                at=now, reason=reason, by=by[:64], customers=len(customers), threads=len(threads), items=before.items
            )
        )
        await add_events(conn, now, (NewEvent(EventKind.ERASED, t, payload={"reason": reason}) for t in threads))
        await add_events(conn, now, (NewEvent(EventKind.ERASED, t, payload={"redraw": True}) for t in shown_beside))
    return before


async def _other_messages(conn: AsyncConnection, thread_ids: Sequence[int]) -> list[int]:
    """The unerased conversations with a Slack message of the customers who own `thread_ids`, besides those."""
    owners: set[int] = set()
    for part in chunks(list(thread_ids)):
        owners.update((await conn.execute(sa.select(Thread.customer_id).where(Thread.id.in_(part)))).scalars())
    found: set[int] = set()
    for part in chunks(sorted(owners)):
        rows = await conn.execute(
            sa.select(Thread.id)
            .join(SlackMessage, SlackMessage.thread_id == Thread.id)
            .where(Thread.customer_id.in_(part), Thread.erased_at.is_(None))
        )
        found.update(rows.scalars())
    return sorted(found - set(thread_ids))


async def _erase_threads(conn: AsyncConnection, part: Sequence[int], now: datetime) -> None:
    # The numbers stay: times, status, SLA clock, intent, language, sentiment, priority, stars, CSAT score.
    await conn.execute(
        sa.update(Item)
        .where(Item.thread_id.in_(part))
        .values(
            text="",
            author_handle=ERASED_AUTHOR,
            author_name=None,
            url=None,
            suggestion="",
            suggestion_truncated=False,
            reply_to={},
            reply_modes=[],
        )
    )
    # The platform's id of a conversation can name the person (a DM's participants): a later item is a new one.
    await conn.execute(
        sa.update(Thread)
        .where(Thread.id.in_(part))
        .values(external_id=sa.literal("erased-") + sa.cast(Thread.id, sa.String), erased_at=now)
    )
    # A reply still pending (its worker crashed) would be sent again after the crash: with its text gone, it is not.
    await conn.execute(
        sa.update(Reply)
        .where(Reply.thread_id.in_(part), Reply.status == ReplyStatus.PENDING)
        .values(status=ReplyStatus.FAILED, claimed_by=None, claimed_until=None)
    )
    await conn.execute(sa.update(Reply).where(Reply.thread_id.in_(part)).values(text="", url=None, error=None))
    # Nobody is asked about a conversation erased; a question already sent keeps its score (the text goes).
    await conn.execute(
        sa.update(CsatQuestion)
        .where(CsatQuestion.thread_id.in_(part), CsatQuestion.status == CsatStatus.SCHEDULED)
        .values(status=CsatStatus.CANCELLED)
    )
    await conn.execute(sa.update(CsatQuestion).where(CsatQuestion.thread_id.in_(part)).values(text=None, error=None))
    # Event payloads hold ids, agents, cycles and times; a platform's error message (reply_failed) may quote the
    # reply: dropped.
    rows = await conn.execute(
        sa.select(Event.id, Event.payload).where(Event.thread_id.in_(part), Event.kind == EventKind.REPLY_FAILED)
    )
    for event_id, payload in rows.all():
        if isinstance(payload, dict) and "error" in payload:
            kept = {k: v for k, v in payload.items() if k != "error"}
            await conn.execute(sa.update(Event).where(Event.id == event_id).values(payload=kept))
    await conn.execute(sa.update(Event).where(Event.thread_id.in_(part)).values(last_error=None))


async def pending_pushes_naming(engine: AsyncEngine, words: Iterable[str]) -> int:
    """How many pushed bodies still waiting to be ingested contain any of `words` (a handle, a name)."""
    words = [w for w in words if w]
    if not words:
        return 0
    async with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(Pushed)
        query = query.where(sa.or_(*(Pushed.body.contains(w, autoescape=True) for w in words)))
        return int((await conn.execute(query)).scalar_one())


async def resolved_before(engine: AsyncEngine, before: datetime) -> list[int]:
    """Conversations resolved before `before` whose texts are not yet erased: what retention erases."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Thread.id)
            .where(
                Thread.status == Status.RESOLVED,
                Thread.resolved_at < before,
                Thread.erased_at.is_(None),
            )
            .order_by(Thread.id)
        )
        return list(rows.scalars())


async def left_without_conversations(engine: AsyncEngine, thread_ids: Sequence[int]) -> list[int]:
    """The customers of these conversations who have no other conversation left unerased: they lose their name too."""
    async with engine.connect() as conn:
        owners: set[int] = set()
        for part in chunks(sorted(set(thread_ids))):
            owners.update((await conn.execute(sa.select(Thread.customer_id).where(Thread.id.in_(part)))).scalars())
        erasing = set(thread_ids)
        keep = []
        for customer_id in sorted(owners):
            others = await conn.execute(
                sa.select(Thread.id).where(Thread.customer_id == customer_id, Thread.erased_at.is_(None))
            )
            if set(others.scalars()) <= erasing:
                keep.append(customer_id)
        return keep


async def erasures(engine: AsyncEngine) -> list[Any]:
    """The record of every erasure, oldest first."""
    async with engine.connect() as conn:
        return list(await conn.execute(sa.select(Erasure).order_by(Erasure.id)))


async def erasures_pending(engine: AsyncEngine, thread_ids: Sequence[int]) -> int:
    """How many of these conversations' erasure events (their Slack edits) are not delivered yet."""
    total = 0
    async with engine.connect() as conn:
        for part in chunks(sorted(set(thread_ids))):
            query = sa.select(sa.func.count()).select_from(Event)
            query = query.where(Event.kind == EventKind.ERASED, Event.done_at.is_(None), Event.thread_id.in_(part))
            total += int((await conn.execute(query)).scalar_one())
    return total


async def flush_erased(engine: AsyncEngine) -> bool:
    """On SQLite, copy the write-ahead log into the file and empty it: its older pages still hold the erased text.

    True when done (or nothing to do: PostgreSQL); False when a reader kept part of the log (it is emptied at the
    next checkpoint SQLite makes by itself, after a thousand pages).
    """
    if engine.dialect.name != "sqlite":
        return True
    async with engine.connect() as conn:
        busy, _log, _moved = (await conn.execute(sa.text("PRAGMA wal_checkpoint(TRUNCATE)"))).one()
    return not busy
