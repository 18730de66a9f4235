"""CSAT questions: scheduled when a conversation is resolved with a reply, claimed and sent once, answered once.

One row per conversation at most (`csat_question.thread_id` is unique): a conversation is never asked twice. The row
is written in the transaction that resolves the thread, claimed by one worker before sending (`FOR UPDATE SKIP
LOCKED`), and marked sent after; a claim that ran out is left over from a crash, and its sender looks on the platform
before sending again. Reports read the per-conversation figures from `per_conversation()` or `csat_counts()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inbox.store.events import NewEvent, add_events, insert_events
from inbox.store.models import CsatQuestion, CsatStatus, EventKind, Item, Reply, ReplyStatus, Thread
from inbox.store.sqlutil import chunks

# Questions that went out: the denominator of the response rate.
ASKED = (CsatStatus.SENT, CsatStatus.ANSWERED, CsatStatus.CLOSED)
_DUE = sa.text("csat_question.status IN ('scheduled', 'sending')")  # as the partial index ix_csat_question_due


class Claim(NamedTuple):
    """The worker sending a question, and until when it is its own."""

    worker: str
    until: datetime


class Awaiting(NamedTuple):
    """A sent question still waiting for the customer's next message."""

    id: int
    sent_at: datetime
    language: str


class CsatCounts(NamedTuple):
    """One conversation's CSAT figures: questions sent (0 or 1), answers (0 or 1), satisfied answers (4 or 5), score."""

    questions: int
    answers: int
    satisfied: int
    score: int | None


async def schedule(conn: AsyncConnection, thread: Any, ask_at: datetime, now: datetime) -> bool:
    """Schedule the thread's question for `ask_at` (inside the transaction resolving it, the thread locked).

    Only for a thread answered with a reply sent from this inbox, and only once: a question already sent (or refused)
    stays; one cancelled because the conversation reopened before it was due is scheduled again. True when scheduled.
    """
    replied = await conn.execute(
        sa.select(sa.literal(1)).where(Reply.thread_id == thread.id, Reply.status == ReplyStatus.SENT).limit(1)
    )
    if replied.first() is None:
        return False
    existing = (
        await conn.execute(sa.select(CsatQuestion.id, CsatQuestion.status).where(CsatQuestion.thread_id == thread.id))
    ).one_or_none()
    language = (
        await conn.execute(
            sa.select(Item.language)
            .where(Item.thread_id == thread.id)
            .order_by(Item.posted_at.desc(), Item.id.desc())
            .limit(1)
        )
    ).scalar_one()
    if existing is not None:
        if existing.status != CsatStatus.CANCELLED:
            return False
        await conn.execute(
            sa.update(CsatQuestion)
            .where(CsatQuestion.id == existing.id)
            .values(status=CsatStatus.SCHEDULED, ask_at=ask_at, language=language, text=None)
        )
        return True
    await conn.execute(
        sa.insert(CsatQuestion).values(
            thread_id=thread.id,
            connector=thread.connector,
            channel=thread.channel,
            language=language,
            ask_at=ask_at,
            status=CsatStatus.SCHEDULED,
            attempts=0,
            created_at=now,
        )
    )
    return True


async def claim_due(engine: AsyncEngine, now: datetime, claim: Claim, limit: int = 50) -> list[Any]:
    """Claim the questions due now, and those whose sender's claim ran out (left over from a crash).

    Each row has the question's columns, `thread_status`, `thread_key` (the thread's external id) and the latest
    item's `item_*` columns (the reply target). `attempts` counts claims: more than one means a send may have
    happened before, so the sender looks on the platform first.
    """
    due = (
        sa.select(CsatQuestion.id)
        .where(
            _DUE,
            CsatQuestion.ask_at <= now,
            sa.or_(CsatQuestion.claimed_until.is_(None), CsatQuestion.claimed_until < now),
        )
        .order_by(CsatQuestion.ask_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    async with engine.begin() as conn:
        ids = (
            (
                await conn.execute(
                    sa.update(CsatQuestion)
                    .where(CsatQuestion.id.in_(due.scalar_subquery()))
                    .values(
                        status=CsatStatus.SENDING,
                        claimed_by=claim.worker,
                        claimed_until=claim.until,
                        attempts=CsatQuestion.attempts + 1,
                    )
                    .returning(CsatQuestion.id)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        latest = (
            sa.select(Item.id)
            .where(Item.thread_id == CsatQuestion.thread_id)
            .order_by(Item.posted_at.desc(), Item.id.desc())
            .limit(1)
            .correlate(CsatQuestion)
            .scalar_subquery()
        )
        rows = await conn.execute(
            sa.select(
                CsatQuestion,
                Thread.status.label("thread_status"),
                Thread.external_id.label("thread_key"),
                Thread.kind.label("thread_kind"),
                Item.external_id.label("item_external_id"),
                Item.kind.label("item_kind"),
                Item.author_handle.label("item_author_handle"),
                Item.author_name.label("item_author_name"),
                Item.reply_to.label("item_reply_to"),
            )
            .join(Thread, Thread.id == CsatQuestion.thread_id)
            .join(Item, Item.id == latest)
            .where(CsatQuestion.id.in_(ids))
            .order_by(CsatQuestion.ask_at)
        )
        return list(rows)


async def set_text(engine: AsyncEngine, question_id: int, text: str, claim: Claim) -> str | None:
    """Fix the question's text (the first claimant renders it; a later one resends the same); None if no longer ours."""
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(CsatQuestion)
            .where(CsatQuestion.id == question_id, CsatQuestion.text.is_(None), _ours(claim))
            .values(text=text)
        )
        stored = (
            await conn.execute(sa.select(CsatQuestion.text).where(CsatQuestion.id == question_id, _ours(claim)))
        ).scalar_one_or_none()
    return stored


async def renew_claim(engine: AsyncEngine, question_id: int, claim: Claim) -> bool:
    """Extend the claim right before sending; False if another worker took the question over."""
    async with engine.begin() as conn:
        renewed = await conn.execute(
            sa.update(CsatQuestion)
            .where(CsatQuestion.id == question_id, _ours(claim))
            .values(claimed_until=claim.until)
        )
    return bool(renewed.rowcount)


async def release(engine: AsyncEngine, question_id: int) -> None:
    """Free a claim whose send has an unknown fate: the next sweep looks on the platform before sending again."""
    await _set(engine, question_id, claimed_by=None, claimed_until=None)


async def mark_sent(engine: AsyncEngine, question_id: int, external_id: str | None, now: datetime) -> None:
    """Record the question as sent (it now awaits the customer's next message), with an event for Slack."""
    async with engine.begin() as conn:
        thread_id = (
            await conn.execute(
                sa.update(CsatQuestion)
                .where(CsatQuestion.id == question_id, CsatQuestion.status == CsatStatus.SENDING)
                .values(
                    status=CsatStatus.SENT,
                    sent_at=now,
                    external_id=external_id,
                    error=None,
                    claimed_by=None,
                    claimed_until=None,
                )
                .returning(CsatQuestion.thread_id)
            )
        ).scalar_one_or_none()
        if thread_id is not None:
            await add_events(conn, now, [NewEvent(EventKind.CSAT_ASKED, thread_id, payload={"question": question_id})])


async def mark_failed(engine: AsyncEngine, question_id: int, error: str) -> None:
    """The platform refused the question: it is not asked again."""
    await _set(engine, question_id, status=CsatStatus.FAILED, error=error[:1000], claimed_by=None, claimed_until=None)


async def cancel(engine: AsyncEngine, question_id: int) -> None:
    """The conversation reopened before the question went out: not asked now (a later resolve schedules it again)."""
    await _set(engine, question_id, status=CsatStatus.CANCELLED, claimed_by=None, claimed_until=None)


async def close_expired(engine: AsyncEngine, before: datetime) -> int:
    """Close the questions sent before `before` that got no answer; how many."""
    async with engine.begin() as conn:
        closed = await conn.execute(
            sa.update(CsatQuestion)
            .where(CsatQuestion.status == CsatStatus.SENT, CsatQuestion.sent_at < before)
            .values(status=CsatStatus.CLOSED)
        )
    return int(closed.rowcount or 0)


def awaiting(conn: sa.Connection, thread_ids: Sequence[int]) -> dict[int, Awaiting]:
    """The sent questions of these threads still waiting for the customer's next message (inside ingest's transaction)."""
    found: dict[int, Awaiting] = {}
    for part in chunks(sorted(set(thread_ids))):
        rows = conn.execute(
            sa.select(CsatQuestion.thread_id, CsatQuestion.id, CsatQuestion.sent_at, CsatQuestion.language).where(
                CsatQuestion.thread_id.in_(part), CsatQuestion.status == CsatStatus.SENT
            )
        )
        for row in rows:
            found[row.thread_id] = Awaiting(row.id, row.sent_at, row.language)
    return found


def record_answer(
    conn: sa.Connection, question: Awaiting, thread_id: int, score: int, item_id: int, at: datetime, now: datetime
) -> bool:
    """Store the customer's rating (inside ingest's transaction), with an event so Slack shows it.

    False when the question no longer awaits (the sweep closed it meanwhile): the message is then a follow-up.
    """
    answered = conn.execute(
        sa.update(CsatQuestion)
        .where(CsatQuestion.id == question.id, CsatQuestion.status == CsatStatus.SENT)
        .values(status=CsatStatus.ANSWERED, score=score, answer_item_id=item_id, answered_at=at)
    )
    if not answered.rowcount:
        return False
    insert_events(conn, now, [NewEvent(EventKind.CSAT_ANSWERED, thread_id, item_id, payload={"score": score})])
    return True


def close(conn: sa.Connection, question: Awaiting) -> None:
    """The customer's next message was no rating: the question takes no later answer."""
    conn.execute(sa.update(CsatQuestion).where(CsatQuestion.id == question.id).values(status=CsatStatus.CLOSED))


def per_conversation() -> sa.Subquery:
    """(thread_id, questions, answers, satisfied, score) per conversation with a question: join it on thread.id.

    `questions` is 1 once the question went out, `answers` 1 once answered, `satisfied` 1 for an answer of 4 or 5.
    """
    asked = CsatQuestion.status.in_([str(s) for s in ASKED])
    return sa.select(
        CsatQuestion.thread_id.label("thread_id"),
        sa.case((asked, 1), else_=0).label("questions"),
        sa.case((CsatQuestion.status == CsatStatus.ANSWERED, 1), else_=0).label("answers"),
        sa.case((CsatQuestion.score >= 4, 1), else_=0).label("satisfied"),
        CsatQuestion.score.label("score"),
    ).subquery("csat")


async def csat_counts(engine: AsyncEngine, thread_ids: Sequence[int]) -> dict[int, CsatCounts]:
    """Each of these conversations' CSAT figures; a conversation never asked is left out."""
    csat = per_conversation()
    found: dict[int, CsatCounts] = {}
    async with engine.connect() as conn:
        for part in chunks(sorted(set(thread_ids))):
            for row in await conn.execute(sa.select(csat).where(csat.c.thread_id.in_(part))):
                found[row.thread_id] = CsatCounts(row.questions, row.answers, row.satisfied, row.score)
    return found


async def answers_between(engine: AsyncEngine, since: datetime, until: datetime) -> CsatCounts:
    """Totals over the questions sent between `since` and `until` (score: None)."""
    csat = per_conversation()
    sent = CsatQuestion.__table__.alias("sent")
    query = (
        sa.select(
            sa.func.coalesce(sa.func.sum(csat.c.questions), 0),
            sa.func.coalesce(sa.func.sum(csat.c.answers), 0),
            sa.func.coalesce(sa.func.sum(csat.c.satisfied), 0),
        )
        .join(sent, sent.c.thread_id == csat.c.thread_id)
        .where(sent.c.sent_at >= since, sent.c.sent_at < until)
    )
    async with engine.connect() as conn:
        questions, answers, satisfied = (await conn.execute(query)).one()
    return CsatCounts(int(questions), int(answers), int(satisfied), None)


async def answer_of(engine: AsyncEngine, thread_id: int) -> Any:
    """The thread's question as Slack shows it (status, sent_at, score, answered_at), or None."""
    async with engine.connect() as conn:
        return (
            await conn.execute(
                sa.select(
                    CsatQuestion.status, CsatQuestion.sent_at, CsatQuestion.score, CsatQuestion.answered_at
                ).where(CsatQuestion.thread_id == thread_id)
            )
        ).one_or_none()


def _ours(claim: Claim) -> sa.ColumnElement[bool]:
    return sa.and_(CsatQuestion.status == CsatStatus.SENDING, CsatQuestion.claimed_by == claim.worker)


async def _set(engine: AsyncEngine, question_id: int, **values: Any) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.update(CsatQuestion).where(CsatQuestion.id == question_id).values(**values))
