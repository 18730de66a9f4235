"""The SLA sweep: announces each warning and each breach once, whichever worker runs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from inbox.store.models import Event, EventKind, SlaStage, Thread, utcnow

log = logging.getLogger("inbox.sweep")  # the logger name users filter on, unchanged by the move into inbox.pipeline


@dataclass(slots=True)
class SweepResult:
    """Threads newly warned about and newly breached in one sweep."""

    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)


class SlaSweep:
    """Moves running clocks to warned or breached and records one event per step."""

    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], datetime] = utcnow, *, on_event: Callable[[], None] = lambda: None
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.on_event = on_event  # told when alerts were recorded, so the outbox delivers them now

    async def run(self) -> SweepResult:
        """One sweep at the current time."""
        now = self.clock()
        result = SweepResult()
        async with self.engine.begin() as conn:
            # The conditional UPDATE is the claim: a second sweep, here or on another worker, matches nothing.
            # Stages are written as constants, not parameters, so PostgreSQL's cached plans still match the
            # partial indexes (ix_thread_sla_due, ix_thread_sla_warn) and read only the clocks due now.
            breached = await conn.execute(
                sa.update(Thread)
                .where(Thread.sla_stage < _const(SlaStage.BREACHED), Thread.due_at <= now)
                .values(sla_stage=SlaStage.BREACHED, updated_at=now)
                .returning(Thread.id, Thread.cycle)
            )
            result.breached = await _record(conn, EventKind.SLA_BREACH, breached.all(), now)
            warned = await conn.execute(
                sa.update(Thread)
                .where(Thread.sla_stage < _const(SlaStage.WARNED), Thread.warn_at <= now, Thread.due_at > now)
                .values(sla_stage=SlaStage.WARNED, updated_at=now)
                .returning(Thread.id, Thread.cycle)
            )
            result.warned = await _record(conn, EventKind.SLA_WARNING, warned.all(), now)
        if result.warned or result.breached:
            self.on_event()
            log.info("SLA sweep: %d warning(s), %d breach(es)", len(result.warned), len(result.breached))
        return result


def _const(stage: SlaStage) -> sa.BindParameter[int]:
    return sa.literal(int(stage), literal_execute=True)


async def _record(conn: sa.ext.asyncio.AsyncConnection, kind: EventKind, rows: list[sa.Row], now: datetime) -> list[int]:
    if rows:
        await conn.execute(
            sa.insert(Event),
            [{"kind": kind, "thread_id": r.id, "payload": {"cycle": r.cycle}, "created_at": now, "attempts": 0} for r in rows],
        )
    return sorted(r.id for r in rows)
