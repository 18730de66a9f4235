"""Every change of a thread's SLA stage, in one place: opened, answered, replied, resolved, restarted, warned, breached.

A thread's stage (`Thread.sla_stage`) is the state the sweep last announced for its running clock (ok: nothing yet,
warning, breached), or None when no clock runs (answered or resolved). The functions giving column values are
written into the statements of the thread's other changes, in the same transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.sla import ClockKind, SlaState
from inbox.store.events import NewEvent, add_events
from inbox.store.models import EventKind, Status, Thread, WindowStage, stage_value, thread_is_open

# The stage of a thread whose clock is stopped: answered or resolved, nothing left to announce.
STOPPED: SlaState | None = None


def running(due_at: datetime, now: datetime, history: bool) -> SlaState:
    """A new running clock's stage: history whose deadline has passed is breached already, so the sweep says nothing."""
    return SlaState.BREACHED if history and due_at <= now else SlaState.OK


def opened(*, waiting: bool, due_at: datetime, now: datetime, history: bool) -> SlaState | None:
    """A new thread's stage: its clock runs while the customer waits, and is stopped when the platform shows it answered."""
    return running(due_at, now, history) if waiting else STOPPED


def is_stopped(stage: SlaState | None) -> bool:
    """True when no clock runs on the thread (answered or resolved)."""
    return stage is STOPPED


def first_response(at: datetime) -> dict[str, Any]:
    """Column values noting a first response at `at`, unless one was noted before."""
    return {"first_response_at": sa.func.coalesce(Thread.first_response_at, at)}


def answered(at: datetime) -> dict[str, Any]:
    """Column values of a thread answered on the platform (outside this inbox) at `at`: its clock stops."""
    return {"status": Status.REPLIED, "responded_at": at, **next_settled(at), "sla_stage": STOPPED}


def replied(now: datetime) -> dict[str, Any]:
    """Column values of a thread whose reply from this inbox was sent at `now`: its clock stops."""
    return {
        "status": Status.REPLIED,
        "responded_at": now,
        **first_response(now),
        **next_settled(now),
        "sla_stage": STOPPED,
    }


def next_settled(at: datetime) -> dict[str, Any]:
    """Column values counting, for reports, a running next-response clock answered at `at` as met or missed.

    Written into the statement that stops the clock: SQL reads the clock as it was before the statement.
    """
    running_next = sa.and_(
        Thread.clock_kind == ClockKind.NEXT_RESPONSE, Thread.sla_stage < _literal(stage_value(STOPPED))
    )
    return {
        "next_met": Thread.next_met + sa.case((sa.and_(running_next, Thread.due_at >= at), 1), else_=0),
        "next_missed": Thread.next_missed + sa.case((sa.and_(running_next, Thread.due_at < at), 1), else_=0),
    }


def resolved(now: datetime) -> dict[str, Any]:
    """Column values of a thread closed at `now` without (another) reply: its clock stops."""
    return {"status": Status.RESOLVED, "resolved_at": now, "sla_stage": STOPPED}


def restarted(
    *, cycle: int, start: datetime, warn_at: datetime, due_at: datetime, now: datetime, history: bool, assigned: bool
) -> dict[str, Any]:
    """Column values of a thread whose customer wrote again after an answer: the next-response clock of cycle `cycle`."""
    return {
        "cycle": cycle,
        "clock_kind": ClockKind.NEXT_RESPONSE,
        "clock_start": start,
        "warn_at": warn_at,
        "due_at": due_at,
        "sla_stage": running(due_at, now, history),
        "responded_at": None,
        "resolved_at": None,
        "status": Status.ASSIGNED if assigned else Status.NEW,
    }


def window_stage(door: datetime | None, now: datetime) -> int:
    """A newly set reply window's stage: one already closed is not announced, else nothing is announced yet."""
    return WindowStage.CLOSED if door is not None and door <= now else WindowStage.NONE


async def announce_due(engine: AsyncEngine, now: datetime) -> tuple[list[int], list[int]]:
    """Move running clocks past their warning or deadline to warned or breached, with one event each.

    Returns the ids of the threads (warned, breached). The conditional UPDATE is the claim: a second sweep, here
    or on another worker, matches nothing.
    """
    async with engine.begin() as conn:
        # Stages are written as constants, not parameters, so PostgreSQL's cached plans still match the
        # partial indexes (ix_thread_sla_due, ix_thread_sla_warn) and read only the clocks due now.
        breached = await conn.execute(
            sa.update(Thread)
            .where(Thread.sla_stage < _const(SlaState.BREACHED), Thread.due_at <= now)
            .values(sla_stage=SlaState.BREACHED, updated_at=now)
            .returning(Thread.id, Thread.cycle)
        )
        breached_rows = breached.all()
        await add_events(
            conn, now, (NewEvent(EventKind.SLA_BREACH, r.id, payload={"cycle": r.cycle}) for r in breached_rows)
        )
        warned = await conn.execute(
            sa.update(Thread)
            .where(Thread.sla_stage < _const(SlaState.WARNING), Thread.warn_at <= now, Thread.due_at > now)
            .values(sla_stage=SlaState.WARNING, updated_at=now)
            .returning(Thread.id, Thread.cycle)
        )
        warned_rows = warned.all()
        await add_events(
            conn, now, (NewEvent(EventKind.SLA_WARNING, r.id, payload={"cycle": r.cycle}) for r in warned_rows)
        )
    return sorted(r.id for r in warned_rows), sorted(r.id for r in breached_rows)


async def announce_windows(engine: AsyncEngine, now: datetime, lead: timedelta) -> tuple[list[int], list[int]]:
    """Move open threads' reply windows to warned (closing within `lead`) or closed, with one event each.

    Returns the ids of the threads (warned, closed). As for the SLA stages, the conditional UPDATE is the claim.
    A window that closed between two sweeps is announced closed, without a warning it could no longer act on.
    """
    async with engine.begin() as conn:
        closed = (
            await conn.execute(
                sa.update(Thread)
                .where(
                    Thread.window_stage < _literal(WindowStage.CLOSED),
                    Thread.reply_window_closes_at <= now,
                    thread_is_open(),
                )
                .values(window_stage=WindowStage.CLOSED, updated_at=now)
                .returning(Thread.id, Thread.reply_window_closes_at)
            )
        ).all()
        await add_events(
            conn,
            now,
            (
                NewEvent(EventKind.WINDOW_CLOSED, r.id, payload={"closes_at": r.reply_window_closes_at.isoformat()})
                for r in closed
            ),
        )
        warned = (
            await conn.execute(
                sa.update(Thread)
                .where(
                    # The first term, implied by the second, lets SQLite see that ix_thread_window holds these rows.
                    Thread.window_stage < _literal(WindowStage.CLOSED),
                    Thread.window_stage < _literal(WindowStage.WARNED),
                    Thread.reply_window_closes_at <= now + lead,
                    Thread.reply_window_closes_at > now,
                    thread_is_open(),
                )
                .values(window_stage=WindowStage.WARNED, updated_at=now)
                .returning(Thread.id, Thread.reply_window_closes_at)
            )
        ).all()
        await add_events(
            conn,
            now,
            (
                NewEvent(EventKind.WINDOW_WARNING, r.id, payload={"closes_at": r.reply_window_closes_at.isoformat()})
                for r in warned
            ),
        )
    return sorted(r.id for r in warned), sorted(r.id for r in closed)


async def open_by_stage(engine: AsyncEngine) -> dict[SlaState | None, int]:
    """How many open threads (new or assigned) are at each stage; stages with none are left out."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(Thread.sla_stage, sa.func.count()).where(thread_is_open()).group_by(Thread.sla_stage)
        )
        return {stage: n for stage, n in rows}


def _const(stage: SlaState) -> sa.BindParameter[int]:
    return _literal(stage_value(stage))


def _literal(value: int) -> sa.BindParameter[int]:
    return sa.literal(value, literal_execute=True)
